"""A pure-Python model of the job table, for the state machine of `test_model.py`.

It restates DESIGN.md section 1 (states, attempts, leases, fencing) one operation at a time,
independently of the SQL, so the state machine can hold the backends to it. Times set by
the test's clock are exact; times the database takes from its own clock (enqueue, cancel,
retry) are known only between two readings of that clock, so a stored time is a `Span`. The
test keeps its clock far from those readings, so that "is it due?" always has one answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from offload.core.flow import DEFAULT_AGING
from offload.core.states import CLAIMABLE, QUEUED, RETRYABLE, JobState

RUNNING = JobState.RUNNING


@dataclass(frozen=True, slots=True)
class Span:
    """A stored time known to lie in [lo, hi] (lo == hi: known exactly)."""

    lo: datetime
    hi: datetime

    @staticmethod
    def at(moment: datetime) -> Span:
        return Span(moment, moment)

    def __add__(self, delta: timedelta) -> Span:
        return Span(self.lo + delta, self.hi + delta)

    def holds(self, moment: datetime) -> bool:
        return self.lo <= moment <= self.hi

    def not_after(self, moment: datetime) -> bool:
        """Whether the time is <= `moment`; refuses to guess when the span straddles it."""
        if self.hi <= moment:
            return True
        assert self.lo > moment, f"{self} straddles {moment}: the test's clock is too close"
        return False


@dataclass(frozen=True, slots=True)
class Grant:
    """A lease as a claim handed it out: the fencing token a worker writes with."""

    worker: str
    id: int
    attempt: int


@dataclass(slots=True)
class ModelJob:
    """What the model expects one row to hold."""

    id: int
    queue: str
    priority: int
    max_attempts: int
    state: JobState
    run_at: Span
    attempt: int = 0
    worker: str | None = None
    lease_until: datetime | None = None
    started_at: datetime | None = None
    finished_at: Span | None = None
    result: str | None = None
    cancel_requested: bool = False
    #: Types of the recorded errors, oldest first.
    errors: list[str] = field(default_factory=list)


class Refused(Exception):
    """The model's InvalidTransition: the operation does not apply to the job's state."""


@dataclass
class Model:
    """Every job of the test, by id, and the operations on them."""

    jobs: dict[int, ModelJob] = field(default_factory=dict)

    def holds(self, grant: Grant) -> bool:
        """Whether `grant` is the job's current lease (what every fenced write checks)."""
        job = self.jobs.get(grant.id)
        return (
            job is not None
            and job.state is RUNNING
            and job.attempt == grant.attempt
            and job.worker == grant.worker
        )

    def insert(
        self, ids: Sequence[int], queue: str, priority: int, attempts: int, at: Span, delay: float
    ) -> None:
        state = JobState.SCHEDULED if delay > 0 else JobState.AVAILABLE
        for job_id in ids:
            run_at = at + timedelta(seconds=delay)
            self.jobs[job_id] = ModelJob(job_id, queue, priority, attempts, state, run_at)

    def claim(
        self, worker: str, queue: str, limit: int, lease: float, now: datetime
    ) -> list[Grant]:
        """Due jobs of `queue` by virtual deadline (run_at less the priority's head start of
        DEFAULT_AGING seconds per step), then id."""
        due = [
            job
            for job in self.jobs.values()
            if job.queue == queue and job.state in CLAIMABLE and job.run_at.not_after(now)
        ]

        due.sort(key=deadline)
        grants = []
        for job in due[:limit]:
            job.state, job.attempt, job.worker = RUNNING, job.attempt + 1, worker
            job.started_at, job.lease_until = now, now + timedelta(seconds=lease)
            grants.append(Grant(worker, job.id, job.attempt))
        return grants

    def heartbeat(
        self, worker: str, leases: Sequence[Grant], lease: float, now: datetime
    ) -> tuple[list[int], list[int]]:
        """(ids of leases lost, held ids asked to cancel)."""
        held = [x for x in leases if self.holds(Grant(worker, x.id, x.attempt))]
        for x in held:
            self.jobs[x.id].lease_until = now + timedelta(seconds=lease)
        kept = {x.id for x in held}
        cancel = sorted(x.id for x in held if self.jobs[x.id].cancel_requested)
        return [x.id for x in leases if x.id not in kept], cancel

    def finish(
        self,
        worker: str,
        outcomes: Sequence[tuple[Grant, JobState, str | None, bool, float]],
        now: datetime,
    ) -> list[int]:
        """Outcomes as (lease, state, result, has error, delay); return the ids not held."""
        lost = []
        for grant, state, result, failed, delay in outcomes:
            if not self.holds(Grant(worker, grant.id, grant.attempt)):
                lost.append(grant.id)
                continue
            job = self.jobs[grant.id]
            job.state, job.result, job.lease_until = state, result, None
            if failed:
                job.errors.append("ValueError")
            if state is JobState.RETRYING:
                job.run_at, job.finished_at = Span.at(now + timedelta(seconds=delay)), None
            else:
                job.finished_at = Span.at(now)
        return lost

    def release(self, worker: str, leases: Sequence[Grant]) -> int:
        held = [x for x in leases if self.holds(Grant(worker, x.id, x.attempt))]
        for x in held:
            job = self.jobs[x.id]
            job.state, job.attempt, job.worker = JobState.AVAILABLE, job.attempt - 1, None
            job.lease_until = job.started_at = None
        return len(held)

    def rescue(self, now: datetime) -> list[int]:
        """Running jobs whose lease ran out: the attempt counts; cancelled, dead or again."""
        rescued = []
        for job in self.jobs.values():
            if job.state is not RUNNING or job.lease_until is None or job.lease_until >= now:
                continue
            if job.cancel_requested:
                job.state = JobState.CANCELLED
            elif job.attempt >= job.max_attempts:
                job.state = JobState.DEAD
            else:
                job.state = JobState.AVAILABLE
            job.finished_at = None if job.state is JobState.AVAILABLE else Span.at(now)
            job.run_at, job.lease_until = Span.at(now), None
            job.errors.append("WorkerLost")
            rescued.append(job.id)
        return sorted(rescued)

    def cancel(self, job_id: int, at: Span) -> None:
        """A queued job ends now; a running one is asked to stop; a finished one refuses."""
        job = self.jobs[job_id]
        if job.state in QUEUED:
            job.state, job.finished_at = JobState.CANCELLED, at
        elif job.state is not RUNNING:
            raise Refused(job.state)
        job.cancel_requested = True

    def retry(self, job_id: int, budget: int | None, at: Span) -> None:
        """A dead or cancelled job runs again, keeping a delay still ahead of it."""
        job = self.jobs[job_id]
        if job.state not in RETRYABLE:
            raise Refused(job.state)
        ahead = job.run_at.lo > at.hi
        if not ahead:  # run_at <= the clock: it becomes the clock
            assert job.run_at.hi <= at.lo, f"{job.run_at} straddles {at}"
            job.run_at = at
        job.state = JobState.SCHEDULED if ahead else JobState.AVAILABLE
        job.max_attempts = job.attempt + (job.max_attempts if budget is None else budget)
        job.worker = job.lease_until = job.started_at = job.finished_at = job.result = None
        job.cancel_requested = False

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for job in self.jobs.values():
            per_queue = out.setdefault(job.queue, {})
            per_queue[job.state] = per_queue.get(job.state, 0) + 1
        return out


def deadline(job: ModelJob) -> tuple[datetime, int]:
    """A job's place in claim order: its virtual deadline (run_at less the priority's head
    start of DEFAULT_AGING seconds per step), then its id."""
    return job.run_at.lo - timedelta(seconds=job.priority * DEFAULT_AGING), job.id
