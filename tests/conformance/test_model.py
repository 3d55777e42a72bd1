"""RELIABILITY 30, model-based conformance: a Hypothesis state machine drives enqueue, claim,
heartbeat, finish (complete, fail, give up, acknowledge a cancel), release, cancel, retry,
the passing of time and the rescue of expired leases against each backend, and checks
every step against the in-memory model of `tests/conformance/model.py`.

After every step: each row's state, attempt, worker, lease, times, result and error types
equal the model's; counts per queue and state agree; a running row is held by exactly the
newest lease a claim handed out for it (so never by two workers); and a write with a lease
that is not held (stale, or another worker's) leaves its row exactly as it was.

Time is the test's clock, passed as `now` to claims, heartbeats, finishes and rescues; it
starts half an hour after the database's clock and moves by whole hours, with leases of
half-hour multiples and delays of whole hours, so nothing is ever due "at about the same
time". Each backend's database is built once and emptied before every example.

Size: `OFFLOAD_MODEL_EXAMPLES` examples per backend (default 500, the RELIABILITY figure)
of at most `OFFLOAD_MODEL_STEPS` steps (default 20).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, ClassVar

import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from offload.backends.base import Backend
from offload.backends.params import (
    ClaimParams,
    FinishParams,
    HeartbeatParams,
    JobListParams,
    JobRetryParams,
    Lease,
    Outcome,
    ReleaseParams,
    RescueParams,
)
from offload.core.errors import InvalidTransition, JobNotFound
from offload.core.job import Job
from offload.core.states import CLAIMABLE, JobState
from tests.conformance.helpers import RawDB, error_json, insert
from tests.conformance.model import RUNNING, Grant, Model, Refused, Span, deadline

EXAMPLES = int(os.environ.get("OFFLOAD_MODEL_EXAMPLES", "500"))
STEPS = int(os.environ.get("OFFLOAD_MODEL_STEPS", "20"))
QUEUES = ("default", "other")
WORKERS = ("w1", "w2")
LEASES = (1800.0, 5400.0)  # never a whole number of hours: a lease never ends on the clock
FINISHES = ("complete", "fail", "give_up", "ack_cancel")


class JobMachine(RuleBasedStateMachine):
    """One example: an empty table, the model, and the leases handed out so far."""

    backend: ClassVar[Backend]
    raw: ClassVar[RawDB]

    def __init__(self) -> None:
        super().__init__()
        self.raw.execute("DELETE FROM offload_jobs")
        self.model = Model()
        self.grants: list[Grant] = []
        self.now = self.backend.now().replace(microsecond=0) + timedelta(minutes=30)

    # -- helpers --------------------------------------------------------------------------

    def _held_leases(self, data: st.DataObject) -> tuple[str, list[Grant]]:
        """A worker holding leases, and 1-3 of them (rarely plus any other lease)."""
        live = [g for g in self.grants if self.model.holds(g)]
        worker = data.draw(st.sampled_from(sorted({g.worker for g in live})), "worker")
        mine = [g for g in live if g.worker == worker]
        picked = data.draw(st.lists(st.sampled_from(mine), min_size=1, max_size=3), "leases")
        if _rarely(data, "and a stale one?"):
            picked.append(data.draw(st.sampled_from(self.grants), "stale lease"))
        return worker, list({g.id: g for g in picked}.values())

    def _snapshot_unheld(self, worker: str, leases: list[Grant]) -> dict[int, Job]:
        """The rows of leases `worker` does not hold, which its write must leave alone."""
        return {
            g.id: self.backend.jobs.get(g.id)
            for g in leases
            if not self.model.holds(Grant(worker, g.id, g.attempt))
        }

    def _unchanged(self, rows: dict[int, Job]) -> None:
        for job_id, before in rows.items():
            assert self.backend.jobs.get(job_id) == before, f"fencing: job {job_id} changed"

    # -- producers and operators ----------------------------------------------------------

    @initialize(n=st.integers(1, 3))
    def some_jobs(self, n: int) -> None:
        """Start each example with jobs of the default queue, due at once."""
        before = self.backend.now()
        ids = insert(self.backend, n)
        self.model.insert(ids, "default", 0, 3, Span(before, self.backend.now()), 0.0)

    @rule(
        queue=st.sampled_from(QUEUES),
        n=st.integers(1, 2),
        priority=st.integers(0, 1),
        attempts=st.integers(1, 3),
        delayed=st.booleans(),
    )
    def enqueue(self, queue: str, n: int, priority: int, attempts: int, delayed: bool) -> None:
        delay = 7200.0 if delayed else 0.0
        before = self.backend.now()
        ids = insert(
            self.backend, n, queue=queue, priority=priority, max_attempts=attempts, delay=delay
        )
        span = Span(before, self.backend.now())
        self.model.insert(ids, queue, priority, attempts, span, delay)

    @precondition(lambda self: self.model.jobs)
    @rule(
        data=st.data(),
        action=st.sampled_from(["cancel", "retry"]),
        budget=st.sampled_from([None, 1, 2]),
    )
    def operate(self, data: st.DataObject, action: str, budget: int | None) -> None:
        """An operator cancels or retries a job: done as the model says, or refused and
        nothing changed; an id that names no job is not found."""
        missing = max(self.model.jobs) + 1000
        job_id = data.draw(st.sampled_from([*sorted(self.model.jobs), missing]), "job")
        jobs = self.backend.jobs
        if job_id == missing:
            with pytest.raises(JobNotFound):
                self._operate(action, job_id, budget)
            return
        before = self.backend.now()
        row = jobs.get(job_id)
        try:
            self._operate(action, job_id, budget)
        except InvalidTransition:
            assert jobs.get(job_id) == row
            refused = True
        else:
            refused = False
        span = Span(before, self.backend.now())
        try:
            if action == "cancel":
                self.model.cancel(job_id, span)
            else:
                self.model.retry(job_id, budget, span)
        except Refused:
            assert refused, f"{action} of {row.state} job {job_id} was accepted"
        else:
            assert not refused, f"{action} of {row.state} job {job_id} was refused"

    def _operate(self, action: str, job_id: int, budget: int | None) -> None:
        if action == "cancel":
            self.backend.jobs.cancel(job_id)
        else:
            self.backend.jobs.retry(JobRetryParams(job_id, budget))

    # -- workers --------------------------------------------------------------------------

    @rule(
        data=st.data(),
        worker=st.sampled_from(WORKERS),
        limit=st.integers(1, 3),
        lease=st.sampled_from(LEASES),
    )
    def claim(self, data: st.DataObject, worker: str, limit: int, lease: float) -> None:
        # Mostly a queue holding claimable jobs (due or not), else any.
        waiting = sorted({j.queue for j in self.model.jobs.values() if j.state in CLAIMABLE})
        queues = QUEUES if not waiting or _rarely(data, "any queue?") else waiting
        queue = data.draw(st.sampled_from(queues), "queue")
        jobs = self.backend.claims.claim(ClaimParams(worker, queue, limit, lease, now=self.now))
        grants = self.model.claim(worker, queue, limit, lease, self.now)
        in_order = sorted(grants, key=lambda g: deadline(self.model.jobs[g.id]))
        assert [(j.id, j.attempt, j.worker) for j in jobs] == [
            (g.id, g.attempt, g.worker) for g in in_order
        ]
        self.grants += grants

    @precondition(lambda self: any(self.model.holds(g) for g in self.grants))
    @rule(data=st.data(), lease=st.sampled_from(LEASES))
    def heartbeat(self, data: st.DataObject, lease: float) -> None:
        self._heartbeat(*self._held_leases(data), lease)

    @precondition(lambda self: any(self.model.holds(g) for g in self.grants))
    @rule(data=st.data(), delay=st.sampled_from([0.0, 3600.0]))
    def finish(self, data: st.DataObject, delay: float) -> None:
        self._finish(data, *self._held_leases(data), delay)

    @precondition(lambda self: any(self.model.holds(g) for g in self.grants))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        self._release(*self._held_leases(data))

    @precondition(lambda self: self.grants)
    @rule(data=st.data(), write=st.sampled_from(["heartbeat", "finish", "release"]))
    def stale_write(self, data: st.DataObject, write: str) -> None:
        """Any worker writes with any leases handed out so far: mostly ones it lost."""
        worker = data.draw(st.sampled_from(WORKERS), "worker")
        picked = data.draw(st.lists(st.sampled_from(self.grants), min_size=1, max_size=3))
        leases = list({g.id: g for g in picked}.values())
        if write == "heartbeat":
            self._heartbeat(worker, leases, LEASES[0])
        elif write == "finish":
            self._finish(data, worker, leases, 0.0)
        else:
            self._release(worker, leases)

    def _heartbeat(self, worker: str, leases: list[Grant], lease: float) -> None:
        unheld = self._snapshot_unheld(worker, leases)
        params = HeartbeatParams(worker, [Lease(g.id, g.attempt) for g in leases], lease, self.now)
        beat = self.backend.claims.heartbeat(params)
        assert (beat.lost, beat.cancel) == self.model.heartbeat(worker, leases, lease, self.now)
        self._unchanged(unheld)

    def _finish(self, data: st.DataObject, worker: str, leases: list[Grant], delay: float) -> None:
        """Each lease's attempt ends as drawn: complete, fail (retry while attempts are
        left), give up, or acknowledge a cancel."""
        unheld = self._snapshot_unheld(worker, leases)
        outcomes, expected = [], []
        for g in leases:
            kind = data.draw(st.sampled_from(FINISHES), "outcome")
            job = self.model.jobs[g.id]
            state, result, error = {
                "complete": (JobState.SUCCEEDED, '{"n": 1}', None),
                "fail": (
                    JobState.RETRYING if g.attempt < job.max_attempts else JobState.DEAD,
                    None,
                    error_json(attempt=g.attempt),
                ),
                "give_up": (JobState.DEAD, None, error_json(attempt=g.attempt)),
                "ack_cancel": (JobState.CANCELLED, None, None),
            }[kind]
            outcomes.append(Outcome(g.id, g.attempt, state, result, error, delay))
            expected.append((g, state, result, error is not None, delay))
        lost = self.backend.claims.finish(FinishParams(worker, outcomes, now=self.now))
        assert lost == self.model.finish(worker, expected, self.now)
        self._unchanged(unheld)

    def _release(self, worker: str, leases: list[Grant]) -> None:
        unheld = self._snapshot_unheld(worker, leases)
        params = ReleaseParams(worker, [Lease(g.id, g.attempt) for g in leases])
        assert self.backend.claims.release(params) == self.model.release(worker, leases)
        self._unchanged(unheld)

    # -- time -----------------------------------------------------------------------------

    @rule(hours=st.integers(1, 2))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @precondition(lambda self: any(j.state is RUNNING for j in self.model.jobs.values()))
    @rule()
    def rescue_expired(self) -> None:
        rescued = self.backend.claims.rescue(RescueParams(now=self.now))
        assert rescued == self.model.rescue(self.now)

    # -- after every step -----------------------------------------------------------------

    @invariant()
    def rows_match_the_model(self) -> None:
        stored = {j.id: j for j in self.backend.jobs.list(JobListParams(limit=1000))}
        assert sorted(stored) == sorted(self.model.jobs)
        for job_id, want in self.model.jobs.items():
            got = stored[job_id]
            assert _row(got) == (
                want.queue,
                want.priority,
                str(want.state),
                want.attempt,
                want.max_attempts,
                want.worker,
                want.lease_until,
                want.started_at,
                None if want.result is None else orjson.loads(want.result),
                want.cancel_requested,
                want.errors,
            ), f"job {job_id}"
            assert want.run_at.holds(got.run_at), (job_id, want.run_at, got.run_at)
            if want.finished_at is None or got.finished_at is None:
                assert (want.finished_at, got.finished_at) == (None, None), job_id
            else:
                assert want.finished_at.holds(got.finished_at), job_id
        assert self.backend.jobs.counts() == self.model.counts()

    @invariant()
    def a_running_job_has_one_holder(self) -> None:
        newest = {g.id: g for g in self.grants}
        for job in self.model.jobs.values():
            if job.state is JobState.RUNNING:
                assert newest[job.id] == Grant(str(job.worker), job.id, job.attempt)
                others = [g for g in self.grants if g.id == job.id and g != newest[job.id]]
                assert not any(self.model.holds(g) for g in others)


def _rarely(data: st.DataObject, label: str) -> bool:
    """True about one time in four."""
    return data.draw(st.sampled_from([False, False, False, True]), label)


def _row(job: Job) -> tuple[Any, ...]:
    return (
        job.queue,
        job.priority,
        str(job.state),
        job.attempt,
        job.max_attempts,
        job.worker,
        job.lease_until,
        job.started_at,
        job.result,
        job.cancel_requested,
        [error["type"] for error in job.errors],
    )


def test_backend_agrees_with_the_model(backend: Backend, db_url: str) -> None:
    machine = type("Machine", (JobMachine,), {"backend": backend, "raw": RawDB(db_url)})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
