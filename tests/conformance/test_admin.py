"""Inspection and administration: get, list with keyset paging, counts, cancel, retry,
rescue, prune, and the worker registry."""

from __future__ import annotations

from typing import Any

import pytest

import offload
from offload.backends.base import Backend
from offload.backends.params import (
    ClaimParams,
    FinishParams,
    JobFilter,
    JobListParams,
    JobRetryParams,
    Outcome,
)
from offload.core.errors import InvalidTransition, JobNotFound
from offload.core.states import JobState
from tests.conformance.helpers import (
    RawDB,
    claim_one,
    error_json,
    finish_next,
    insert,
    insert_jobs,
    new_job,
)

MISSING = 987_654_321


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

    def ids(limit: int = 50, **filters: Any) -> list[int]:
        return [
            job.id for job in backend.jobs.list(JobListParams(JobFilter(**filters), None, limit))
        ]

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
    for job in backend.jobs.list(JobListParams(JobFilter(queue="b"))):
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
    with pytest.raises(offload.ValidationError, match="unknown job state"):
        app.jobs(state="finished")
    assert app.jobs(state="available") == []


@pytest.mark.parametrize(
    "bad", [{"limit": -1}, {"limit": "5"}, {"limit": True}, {"before_id": "10"}], ids=str
)
def test_app_jobs_refuses_a_bad_limit_or_cursor(app: offload.App, bad: dict[str, object]) -> None:
    """Both backends must answer alike: SQLite reads LIMIT -1 as "no limit" and compares
    ids with text, PostgreSQL raises a SQL error; the App should refuse the call itself."""
    insert(app.backend, 3)
    with pytest.raises(offload.ValidationError):
        app.jobs(**bad)  # type: ignore[arg-type]


# -- counts -----------------------------------------------------------------------------


def test_queue_counts_per_queue_and_state(backend: Backend, app: offload.App) -> None:
    assert backend.jobs.counts() == {}
    insert(backend, 3, queue="a")
    insert(backend, 2, queue="b")
    insert(backend, 1, queue="b", delay=60.0)
    backend.claims.claim(ClaimParams("w1", "a", 1, 30.0))
    finish_next(backend, JobState.SUCCEEDED, queue="b")
    assert backend.jobs.counts() == {
        "a": {"available": 2, "running": 1},
        "b": {"available": 1, "scheduled": 1, "succeeded": 1},
    }
    assert app.queue_counts() == backend.jobs.counts()


# -- cancel -----------------------------------------------------------------------------


def test_cancel_of_queued_jobs(backend: Backend) -> None:
    available, scheduled = insert(backend, 1)[0], insert(backend, 1, delay=60.0)[0]
    (retrying,) = insert(backend, 1, queue="r")
    finish_next(backend, JobState.RETRYING, queue="r")
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
    finished = [finish_next(backend, state) for state in (JobState.SUCCEEDED, JobState.DEAD)]
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
    dead = finish_next(backend, JobState.DEAD)
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
    succeeded = finish_next(backend, JobState.SUCCEEDED)
    running = claim_one(backend).id
    (available,) = insert(backend, 1, queue="x")
    (scheduled,) = insert(backend, 1, delay=60.0)
    insert(backend, 1, queue="r")
    retrying = finish_next(backend, JobState.RETRYING, queue="r")
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
