"""Inspection and administration: get, list with keyset paging, counts, cancel, retry,
rescue, prune, and the worker registry."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import offload
from offload.backends.base import Backend
from offload.backends.params import (
    ClaimParams,
    FinishParams,
    JobListParams,
    JobPruneParams,
    JobRetryParams,
    Outcome,
    RescueParams,
)
from offload.core.errors import InvalidTransition, JobNotFound
from offload.core.records import WorkerInfo
from offload.core.states import JobState
from tests.conformance.helpers import (
    SHORT_LEASE,
    RawDB,
    claim_one,
    error_json,
    expire_lease,
    insert,
    insert_jobs,
    new_job,
    wait_db_time_past,
)

MISSING = 987_654_321


def _finish(backend: Backend, state: JobState, queue: str = "default") -> int:
    """Claim the next job of `queue` and end it in `state`; return its id."""
    job = claim_one(backend, queue=queue)
    error = None if state is JobState.SUCCEEDED else error_json()
    outcome = Outcome(job.id, job.attempt, state, result="1" if error is None else None)
    if error is not None:
        outcome = Outcome(job.id, job.attempt, state, error=error, delay=60.0)
    assert backend.claims.finish(FinishParams("w1", [outcome])) == []
    return job.id


# -- get --------------------------------------------------------------------------------


def test_get_of_a_missing_id_raises_job_not_found(backend: Backend, app: offload.App) -> None:
    with pytest.raises(JobNotFound) as info:
        backend.jobs.get(MISSING)
    assert info.value.job_id == MISSING
    assert str(MISSING) in str(info.value)
    with pytest.raises(JobNotFound):
        app.job(MISSING)
    (job_id,) = insert(backend)
    assert app.job(job_id).id == job_id


# -- list -------------------------------------------------------------------------------


def test_list_filters_by_queue_state_and_task(backend: Backend) -> None:
    a_send = insert_jobs(backend, [new_job("send", "a", args=[i]) for i in range(3)])
    a_other = insert_jobs(backend, [new_job("other", "a", args=[i]) for i in range(2)])
    b_send = insert_jobs(backend, [new_job("send", "b", args=[i]) for i in range(4)])
    running = backend.claims.claim(ClaimParams("w1", "b", 2, 30.0))
    running_ids = sorted(job.id for job in running)
    everything = sorted(a_send + a_other + b_send, reverse=True)

    def ids(**filters: object) -> list[int]:
        return [job.id for job in backend.jobs.list(JobListParams(**filters))]  # type: ignore[arg-type]

    assert ids() == everything
    assert ids(queue="a") == sorted(a_send + a_other, reverse=True)
    assert ids(queue="b") == sorted(b_send, reverse=True)
    assert ids(task="send") == sorted(a_send + b_send, reverse=True)
    assert ids(task="other") == sorted(a_other, reverse=True)
    assert ids(state=JobState.RUNNING) == sorted(running_ids, reverse=True)
    assert ids(state=JobState.AVAILABLE) == [i for i in everything if i not in running_ids]
    assert ids(queue="a", task="send") == sorted(a_send, reverse=True)
    assert ids(queue="a", state=JobState.RUNNING) == []
    assert ids(queue="b", task="send", state=JobState.RUNNING) == sorted(running_ids)[::-1]
    assert ids(queue="nope") == []
    assert ids(limit=3) == everything[:3]
    # Whole jobs come back, equal to job_get.
    for job in backend.jobs.list(JobListParams(queue="b")):
        assert job == backend.jobs.get(job.id)


def test_list_keyset_paging_is_disjoint_and_complete(backend: Backend, app: offload.App) -> None:
    ids = insert_jobs(backend, [new_job(queue="p" if i % 3 else "q", args=[i]) for i in range(37)])
    pages: list[list[int]] = []
    before: int | None = None
    while True:
        page = [job.id for job in backend.jobs.list(JobListParams(before_id=before, limit=10))]
        if not page:
            break
        assert page == sorted(page, reverse=True)
        assert len(page) <= 10
        if pages:
            assert max(page) < min(pages[-1])
        pages.append(page)
        before = page[-1]
    assert [len(p) for p in pages] == [10, 10, 10, 7]
    flat = [job_id for page in pages for job_id in page]
    assert len(flat) == len(set(flat)) == 37
    assert sorted(flat) == sorted(ids)
    # The same through the App, with a filter: the pages stay inside it.
    p_ids = sorted((i for n, i in enumerate(ids) if n % 3), reverse=True)
    seen: list[int] = []
    cursor: int | None = None
    while page_jobs := app.jobs(queue="p", before_id=cursor, limit=4):
        seen += [job.id for job in page_jobs]
        cursor = page_jobs[-1].id
    assert seen == p_ids


def test_app_jobs_rejects_an_unknown_state(app: offload.App) -> None:
    with pytest.raises(offload.ConfigurationError, match="unknown job state"):
        app.jobs(state="finished")
    assert app.jobs(state="available") == []


@pytest.mark.parametrize(
    "bad", [{"limit": -1}, {"limit": "5"}, {"limit": True}, {"before_id": "10"}], ids=str
)
def test_app_jobs_refuses_a_bad_limit_or_cursor(app: offload.App, bad: dict[str, object]) -> None:
    """Both backends must answer alike: SQLite reads LIMIT -1 as "no limit" and compares
    ids with text, PostgreSQL raises a SQL error; the App should refuse the call itself."""
    insert(app.backend, 3)
    with pytest.raises(offload.ConfigurationError):
        app.jobs(**bad)  # type: ignore[arg-type]


# -- counts -----------------------------------------------------------------------------


def test_queue_counts_per_queue_and_state(backend: Backend, app: offload.App) -> None:
    assert backend.jobs.counts() == {}
    insert(backend, 3, queue="a")
    insert(backend, 2, queue="b")
    insert(backend, 1, queue="b", delay=60.0)
    backend.claims.claim(ClaimParams("w1", "a", 1, 30.0))
    _finish(backend, JobState.SUCCEEDED, queue="b")
    assert backend.jobs.counts() == {
        "a": {"available": 2, "running": 1},
        "b": {"available": 1, "scheduled": 1, "succeeded": 1},
    }
    assert app.queue_counts() == backend.jobs.counts()


# -- cancel -----------------------------------------------------------------------------


def test_cancel_of_queued_jobs(backend: Backend) -> None:
    available, scheduled = insert(backend, 1)[0], insert(backend, 1, delay=60.0)[0]
    (retrying,) = insert(backend, 1, queue="r")
    _finish(backend, JobState.RETRYING, queue="r")
    for job_id in (available, scheduled, retrying):
        before = backend.now()
        cancelled = backend.jobs.cancel(job_id)
        assert cancelled.id == job_id
        assert cancelled.state is JobState.CANCELLED
        assert cancelled.finished_at is not None
        assert cancelled.finished_at >= before
        assert backend.jobs.get(job_id) == cancelled
    assert backend.claims.claim(ClaimParams("w1", "default", 10, 30.0)) == []
    assert backend.claims.claim(ClaimParams("w1", "r", 10, 30.0)) == []


def test_cancel_of_a_running_job_asks_it_to_stop(backend: Backend, db_url: str) -> None:
    (job_id,) = insert(backend, 1)
    job = claim_one(backend)
    answer = backend.jobs.cancel(job_id)
    assert answer.state is JobState.RUNNING
    assert answer.cancel_requested is True
    assert answer.worker == job.worker
    assert answer.finished_at is None
    assert bool(RawDB(db_url).job_row(job_id)["cancel_requested"]) is True
    # The worker still owns it and records how it ended.
    assert backend.claims.finish(FinishParams("w1", [Outcome(job_id, 1, JobState.CANCELLED)])) == []
    assert backend.jobs.get(job_id).state is JobState.CANCELLED


def test_cancel_of_a_finished_job_is_an_invalid_transition(backend: Backend, db_url: str) -> None:
    insert(backend, 3)
    finished = [_finish(backend, state) for state in (JobState.SUCCEEDED, JobState.DEAD)]
    (cancelled,) = insert(backend, 1)
    backend.jobs.cancel(cancelled)
    snapshot = RawDB(db_url).all_rows()
    for job_id, state in zip(
        [*finished, cancelled], ["succeeded", "dead", "cancelled"], strict=True
    ):
        with pytest.raises(InvalidTransition) as info:
            backend.jobs.cancel(job_id)
        assert (info.value.job_id, info.value.state, info.value.operation) == (
            job_id,
            state,
            "cancel",
        )
        assert f"cannot cancel job {job_id}: it is {state}" in str(info.value)
    assert RawDB(db_url).all_rows() == snapshot


def test_cancel_and_retry_of_a_missing_job_raise_job_not_found(
    backend: Backend, app: offload.App
) -> None:
    with pytest.raises(JobNotFound):
        backend.jobs.cancel(MISSING)
    with pytest.raises(JobNotFound):
        backend.jobs.retry(JobRetryParams(MISSING))
    with pytest.raises(JobNotFound):
        app.cancel(MISSING)
    with pytest.raises(JobNotFound):
        app.retry(MISSING)


# -- retry ------------------------------------------------------------------------------


def test_retry_of_dead_and_cancelled_jobs_gives_a_fresh_budget(backend: Backend) -> None:
    insert(backend, 1, max_attempts=1)
    dead = _finish(backend, JobState.DEAD)
    (cancelled,) = insert(backend, 1)
    backend.jobs.cancel(cancelled)
    for job_id, spent, budget in ((dead, 1, 1), (cancelled, 0, 3)):
        before = backend.now()
        job = backend.jobs.retry(JobRetryParams(job_id))
        assert job.state is JobState.AVAILABLE
        # Attempts keep counting, with the job's budget granted again.
        assert (job.attempt, job.max_attempts) == (spent, spent + budget)
        assert job.run_at >= before
        assert (job.finished_at, job.started_at, job.lease_until, job.worker) == (
            None,
            None,
            None,
            None,
        )
        assert job.result is None
        assert backend.jobs.get(job_id) == job
    assert backend.jobs.get(dead).errors != []  # history is kept
    claimed = backend.claims.claim(ClaimParams("w2", "default", 10, 30.0))
    assert sorted(job.id for job in claimed) == sorted([dead, cancelled])
    assert {job.id: job.attempt for job in claimed} == {dead: 2, cancelled: 1}


def test_retry_keeps_the_error_history_in_order_and_a_pending_delay(backend: Backend) -> None:
    insert(backend, 1, max_attempts=2)
    for attempt in (1, 2):
        job = claim_one(backend)
        state = JobState.RETRYING if attempt == 1 else JobState.DEAD
        error = error_json("ValueError", f"try {attempt}", attempt=job.attempt)
        outcome = Outcome(job.id, job.attempt, state, error=error)
        assert backend.claims.finish(FinishParams("w1", [outcome])) == []
    retried = backend.jobs.retry(JobRetryParams(job.id, budget=3))
    assert (retried.attempt, retried.max_attempts) == (2, 5)
    again = claim_one(backend)
    outcome = Outcome(again.id, again.attempt, JobState.DEAD, error=error_json(attempt=3))
    assert backend.claims.finish(FinishParams("w1", [outcome])) == []
    # The third run's error reads as attempt 3, after 1 and 2: one history.
    assert [e["attempt"] for e in backend.jobs.get(job.id).errors] == [1, 2, 3]
    # A delayed job cancelled before its time keeps that time when retried.
    (delayed,) = insert(backend, 1, delay=60.0)
    run_at = backend.jobs.cancel(delayed).run_at
    kept = backend.jobs.retry(JobRetryParams(delayed))
    assert (kept.state, kept.run_at) == (JobState.SCHEDULED, run_at)
    assert backend.claims.claim(ClaimParams("w1", "default", 10, 30.0)) == []


def test_retry_of_other_states_is_an_invalid_transition(backend: Backend, db_url: str) -> None:
    insert(backend, 2)
    succeeded = _finish(backend, JobState.SUCCEEDED)
    running = claim_one(backend).id
    (available,) = insert(backend, 1, queue="x")
    (scheduled,) = insert(backend, 1, delay=60.0)
    insert(backend, 1, queue="r")
    retrying = _finish(backend, JobState.RETRYING, queue="r")
    snapshot = RawDB(db_url).all_rows()
    cases = [
        (succeeded, "succeeded"),
        (running, "running"),
        (available, "available"),
        (scheduled, "scheduled"),
        (retrying, "retrying"),
    ]
    for job_id, state in cases:
        with pytest.raises(InvalidTransition) as info:
            backend.jobs.retry(JobRetryParams(job_id))
        assert (info.value.state, info.value.operation) == (state, "retry")
    assert RawDB(db_url).all_rows() == snapshot


# -- rescue -----------------------------------------------------------------------------


def test_rescue_returns_expired_leases_to_available(backend: Backend) -> None:
    expired_id, fresh_id, idle_id = insert(backend, 3, max_attempts=3)
    expired = claim_one(backend, worker="gone", lease=SHORT_LEASE)
    fresh = claim_one(backend, worker="alive", lease=60.0)
    assert (expired.id, fresh.id) == (expired_id, fresh_id)
    assert backend.claims.rescue(RescueParams()) == []  # nothing has expired yet
    expire_lease(backend, expired)
    before = backend.now()
    assert backend.claims.rescue(RescueParams()) == [expired_id]
    job = backend.jobs.get(expired_id)
    assert job.state is JobState.AVAILABLE
    assert job.attempt == 1  # the lost attempt counts
    assert job.lease_until is None
    assert job.finished_at is None
    assert job.run_at >= before
    (entry,) = job.errors
    assert entry["type"] == "WorkerLost"
    assert entry["attempt"] == 1
    assert "gone" in entry["message"]
    assert "lease" in entry["message"]
    # Other jobs are untouched, and a second sweep finds nothing.
    assert backend.jobs.get(fresh_id) == fresh
    assert backend.jobs.get(idle_id).state is JobState.AVAILABLE
    assert backend.claims.rescue(RescueParams()) == []
    again = backend.claims.claim(ClaimParams("next", "default", 10, 30.0))
    assert {job.id: job.attempt for job in again} == {idle_id: 1, expired_id: 2}


def test_rescue_of_the_last_attempt_makes_the_job_dead(backend: Backend) -> None:
    (job_id,) = insert(backend, 1, max_attempts=2)
    for attempt in (1, 2):
        job = claim_one(backend, lease=SHORT_LEASE)
        assert job.attempt == attempt
        expire_lease(backend, job)
        assert backend.claims.rescue(RescueParams()) == [job_id]
    dead = backend.jobs.get(job_id)
    assert dead.state is JobState.DEAD
    assert dead.attempt == 2
    assert dead.finished_at is not None
    assert [(e["type"], e["attempt"]) for e in dead.errors] == [
        ("WorkerLost", 1),
        ("WorkerLost", 2),
    ]
    assert backend.claims.claim(ClaimParams("w1", "default", 1, 30.0)) == []


def test_rescue_of_a_job_whose_cancel_was_requested_cancels_it(backend: Backend) -> None:
    (job_id,) = insert(backend, 1, max_attempts=3)
    job = claim_one(backend, lease=SHORT_LEASE)
    backend.jobs.cancel(job_id)
    expire_lease(backend, job)
    assert backend.claims.rescue(RescueParams()) == [job_id]
    cancelled = backend.jobs.get(job_id)
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.finished_at is not None
    assert backend.claims.claim(ClaimParams("w1", "default", 1, 30.0)) == []


def test_rescue_handles_many_jobs_at_once(backend: Backend) -> None:
    ids = insert(backend, 20, max_attempts=1)
    jobs = backend.claims.claim(ClaimParams("w1", "default", 20, SHORT_LEASE))
    expire_lease(backend, max(jobs, key=lambda j: j.lease_until or j.enqueued_at))
    assert backend.claims.rescue(RescueParams()) == ids
    assert {backend.jobs.get(i).state for i in ids} == {JobState.DEAD}


# -- prune ------------------------------------------------------------------------------


def test_prune_deletes_only_finished_states_older_than_their_age(
    backend: Backend, db_url: str
) -> None:
    insert(backend, 3, max_attempts=1)
    old_ok = _finish(backend, JobState.SUCCEEDED)
    old_dead = _finish(backend, JobState.DEAD)
    (old_cancelled,) = insert(backend, 1, queue="c")
    backend.jobs.cancel(old_cancelled)
    (old_retrying,) = insert(backend, 1, queue="r")
    _finish(backend, JobState.RETRYING, queue="r")
    running = claim_one(backend).id
    (old_available,) = insert(backend, 1, queue="x")
    newest_old = backend.jobs.get(old_cancelled).finished_at
    assert newest_old is not None
    wait_db_time_past(backend, newest_old + timedelta(seconds=0.5))
    insert(backend, 2, queue="n")
    new_ok = _finish(backend, JobState.SUCCEEDED, queue="n")
    new_dead = _finish(backend, JobState.DEAD, queue="n")

    age = 0.4
    assert backend.jobs.prune(JobPruneParams({JobState.SUCCEEDED: age, JobState.DEAD: age})) == 2
    remaining = {row["id"] for row in RawDB(db_url).all_rows()}
    assert old_ok not in remaining
    assert old_dead not in remaining
    assert {old_cancelled, old_retrying, running, old_available, new_ok, new_dead} == remaining
    # Per-state retention: cancelled jobs kept for an hour stay; with a short one they go.
    assert backend.jobs.prune(JobPruneParams({JobState.CANCELLED: 3600.0})) == 0
    assert backend.jobs.prune(JobPruneParams({JobState.CANCELLED: age})) == 1
    assert backend.jobs.prune(JobPruneParams({JobState.SUCCEEDED: age, JobState.DEAD: age})) == 0
    with pytest.raises(JobNotFound):
        backend.jobs.get(old_ok)
    # Recently finished jobs go once they are old enough.
    time.sleep(age + 0.1)
    assert backend.jobs.prune(JobPruneParams({JobState.SUCCEEDED: age, JobState.DEAD: age})) == 2
    assert {row["id"] for row in RawDB(db_url).all_rows()} == {
        old_retrying,
        running,
        old_available,
    }


def test_prune_refuses_unfinished_states_and_deletes_nothing(backend: Backend, db_url: str) -> None:
    insert(backend, 1)
    done = _finish(backend, JobState.SUCCEEDED)
    insert(backend, 2)
    wait_db_time_past(backend, backend.now() + timedelta(seconds=0.1))
    snapshot = RawDB(db_url).all_rows()
    for state in (JobState.AVAILABLE, JobState.RUNNING, JobState.RETRYING, JobState.SCHEDULED):
        with pytest.raises(ValueError, match="only finished states"):
            backend.jobs.prune(JobPruneParams({JobState.SUCCEEDED: 0.0, state: 0.0}))
    assert RawDB(db_url).all_rows() == snapshot
    assert backend.jobs.get(done).state is JobState.SUCCEEDED


# -- workers ----------------------------------------------------------------------------


def test_worker_registry(backend: Backend) -> None:
    now = backend.now()
    info = WorkerInfo("host:1:abc", "host", 1, ["a", "b"], 4, now, now, wake="addr")
    backend.workers.register(info)
    (listed,) = backend.workers.list()
    assert (listed.id, listed.host, listed.pid, listed.queues, listed.concurrency) == (
        "host:1:abc",
        "host",
        1,
        ["a", "b"],
        4,
    )
    assert listed.wake == "addr"
    first_beat = listed.heartbeat_at
    wait_db_time_past(backend, first_beat)
    backend.workers.heartbeat(info.id)
    (beaten,) = backend.workers.list()
    assert beaten.heartbeat_at > first_beat
    assert beaten.started_at == listed.started_at
    backend.workers.register(info)  # registering again refreshes, never duplicates
    assert len(backend.workers.list()) == 1
    backend.workers.unregister(info.id)
    assert backend.workers.list() == []


def test_worker_prune_forgets_silent_workers(backend: Backend) -> None:
    now = backend.now()
    backend.workers.register(WorkerInfo("silent", "h", 1, ["a"], 1, now, now))
    wait_db_time_past(backend, backend.now() + timedelta(seconds=0.6))
    backend.workers.register(WorkerInfo("alive", "h", 2, ["a"], 1, now, now))
    assert backend.workers.prune(3600.0) == 0
    assert backend.workers.prune(0.4) == 1
    assert [w.id for w in backend.workers.list()] == ["alive"]
