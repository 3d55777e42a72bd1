"""Bulk operations: retry_many, cancel_many and purge, each one statement over a JobFilter,
counting exactly what matched and changing only jobs in the states each accepts."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from typing import Any

import psycopg
import pytest

import offload
from offload.backends.base import Backend
from offload.backends.params import (
    ClaimParams,
    JobFilter,
    JobListParams,
    JobRetryManyParams,
    JobRetryParams,
)
from offload.core.errors import ValidationError
from offload.core.records import JobChange
from offload.core.states import JobState
from tests.conformance.helpers import (
    RawDB,
    claim_one,
    finish_next,
    insert,
    insert_jobs,
    is_sqlite,
    new_job,
    sqlite_path,
    wait_db_time_past,
)

#: Columns a retry or cancel writes (ids and times aside), to compare single and bulk forms.
CHANGED = ("state", "attempt", "max_attempts", "worker", "result", "cancel_requested")


def one_of_each(backend: Backend, queue: str = "default") -> dict[JobState, int]:
    """A job in every state a test can reach through the backend, in `queue`."""
    ids: dict[JobState, int] = {}
    insert(backend, 4, queue=queue, max_attempts=1)
    for state in (JobState.SUCCEEDED, JobState.DEAD):
        ids[state] = finish_next(backend, state, queue=queue)
    ids[JobState.RUNNING] = claim_one(backend, queue=queue).id
    (ids[JobState.CANCELLED],) = insert(backend, 1, queue=queue)
    backend.jobs.cancel(ids[JobState.CANCELLED])
    (ids[JobState.SCHEDULED],) = insert(backend, 1, queue=queue, delay=600.0)
    remaining = backend.jobs.list(JobListParams(JobFilter(queue=queue)))
    available = [j.id for j in remaining if j.state is JobState.AVAILABLE]
    ids[JobState.AVAILABLE] = available[0]
    return ids


def states_of(db_url: str) -> dict[int, tuple[str, bool]]:
    rows = RawDB(db_url).query("SELECT id, state, cancel_requested FROM offload_jobs")
    return {int(r["id"]): (str(r["state"]), bool(r["cancel_requested"])) for r in rows}


def projection(db_url: str, job_id: int) -> tuple[Any, ...]:
    row = RawDB(db_url).job_row(job_id)
    return tuple(bool(row[c]) if c == "cancel_requested" else row[c] for c in CHANGED)


# -- retry_many -------------------------------------------------------------------------


def test_retry_many_changes_exactly_the_retryable_jobs(backend: Backend, db_url: str) -> None:
    ids = one_of_each(backend)
    before = states_of(db_url)
    changed = backend.jobs.retry_many(JobRetryManyParams(JobFilter(queue="default"), {}))
    assert [(c.id, c.state) for c in changed] == sorted(
        [(ids[JobState.DEAD], JobState.AVAILABLE), (ids[JobState.CANCELLED], JobState.AVAILABLE)]
    )
    after = states_of(db_url)
    for state, job_id in ids.items():
        if state not in (JobState.DEAD, JobState.CANCELLED):
            assert after[job_id] == before[job_id], state
    # A second run finds nothing left to retry.
    again = backend.jobs.retry_many(JobRetryManyParams(JobFilter(queue="default"), {}))
    assert again == []


def test_retry_many_writes_what_a_single_retry_writes(backend: Backend, db_url: str) -> None:
    insert(backend, 2, max_attempts=1)
    singles = finish_next(backend, JobState.DEAD)
    bulk = finish_next(backend, JobState.DEAD)
    backend.jobs.retry(JobRetryParams(singles, 5))
    (changed,) = backend.jobs.retry_many(JobRetryManyParams(JobFilter(ids=[bulk]), {"t": 5}))
    assert changed.id == bulk
    assert projection(db_url, bulk) == projection(db_url, singles)
    assert backend.jobs.get(bulk).max_attempts == 1 + 5
    # A task missing from the budgets keeps its max_attempts, like retry without a budget.
    (other,) = insert(backend, 1, task="other", max_attempts=2)
    backend.jobs.cancel(other)
    backend.jobs.retry_many(JobRetryManyParams(JobFilter(task="other"), {"t": 9}))
    assert backend.jobs.get(other).max_attempts == 0 + 2


def test_filters_combine_and_count_exactly(backend: Backend, app: offload.App) -> None:
    mail = insert_jobs(backend, [new_job("send", "mail", args=[i]) for i in range(5)])
    other = insert_jobs(backend, [new_job("send", "other", args=[i]) for i in range(3)])
    report = insert_jobs(backend, [new_job("report", "mail", args=[i]) for i in range(2)])
    for job_id in mail + other + report:
        backend.jobs.cancel(job_id)

    def count(**where: Any) -> int:
        return len(backend.jobs.retry_many(JobRetryManyParams(JobFilter(**where), {})))

    def cancel_again() -> None:
        backend.jobs.cancel_many(JobFilter())

    assert count(queue="mail", task="send") == 5
    cancel_again()
    assert count(queue="mail") == 7
    cancel_again()
    assert count(task="report") == 2
    cancel_again()
    assert count(ids=[mail[0], other[0], 987_654_321]) == 2
    cancel_again()
    assert count(ids=[mail[0]], queue="other") == 0  # ids and filters: all must hold
    assert count(ids=[]) == 0
    assert count(ids=[2**70, -(2**70)]) == 0  # beyond the id range: matches nothing
    assert count(state=JobState.CANCELLED, queue="nope") == 0
    assert count(state=JobState.CANCELLED) == 10


def test_time_bounds_compare_with_enqueued_at(backend: Backend) -> None:
    early = insert(backend, 3, queue="t")
    middle = backend.now()
    wait_db_time_past(backend, middle)
    late = insert(backend, 2, queue="t")
    stored = {
        job.id: job.enqueued_at for job in backend.jobs.list(JobListParams(JobFilter(queue="t")))
    }
    cut = stored[late[0]]
    assert all(stored[i] < cut for i in early)
    cancelled = backend.jobs.cancel_many(JobFilter(before=cut))
    assert [c.id for c in cancelled] == sorted(early)
    cancelled = backend.jobs.cancel_many(JobFilter(after=cut))
    assert [c.id for c in cancelled] == sorted(late)
    assert backend.jobs.purge(JobFilter(after=cut, before=cut)) == 0
    assert backend.jobs.purge(JobFilter(before=cut + timedelta(seconds=1))) == 5


# -- cancel_many ------------------------------------------------------------------------


def test_cancel_many_ends_queued_jobs_and_asks_running_ones_to_stop(
    backend: Backend, db_url: str
) -> None:
    ids = one_of_each(backend)
    (shed,) = insert(backend, 1)
    RawDB(db_url).execute("UPDATE offload_jobs SET state = 'shed' WHERE id = ?", [shed])
    before = states_of(db_url)
    changed = {c.id: c.state for c in backend.jobs.cancel_many(JobFilter(queue="default"))}
    assert changed == {
        ids[JobState.AVAILABLE]: JobState.CANCELLED,
        ids[JobState.SCHEDULED]: JobState.CANCELLED,
        shed: JobState.CANCELLED,
        ids[JobState.RUNNING]: JobState.RUNNING,
    }
    after = states_of(db_url)
    assert after[ids[JobState.RUNNING]] == ("running", True)
    for state in (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED):
        assert after[ids[state]] == before[ids[state]]
    for job_id in (ids[JobState.AVAILABLE], ids[JobState.SCHEDULED], shed):
        job = backend.jobs.get(job_id)
        assert (job.state, job.cancel_requested) == (JobState.CANCELLED, True)
        assert job.finished_at is not None


def test_cancel_many_and_a_concurrent_claim_never_leave_a_job_running_unasked(
    backend: Backend, db_url: str
) -> None:
    """Whichever statement comes first, a claimed job ends running with a stop request and
    an unclaimed one ends cancelled: no job is cancelled under a worker unawares."""
    insert(backend, 200, queue="race")
    claimed: list[int] = []
    start = threading.Barrier(2)

    def claim() -> None:
        start.wait()
        for _ in range(40):
            claimed.extend(j.id for j in backend.claims.claim(ClaimParams("w", "race", 5, 30.0)))

    thread = threading.Thread(target=claim)
    thread.start()
    start.wait()
    changed = backend.jobs.cancel_many(JobFilter(queue="race"))
    thread.join()
    rows = states_of(db_url)
    assert len(changed) == 200  # every job was queued or running when the statement ran
    for job_id, (state, asked) in rows.items():
        if job_id in claimed:
            assert (state, asked) == ("running", True) or (state, asked) == ("cancelled", True)
        else:
            assert (state, asked) == ("cancelled", True)
    running = [job_id for job_id, (state, _) in rows.items() if state == "running"]
    assert set(running) <= set(claimed)
    assert {c.id for c in changed if c.state is JobState.RUNNING} == set(running)


def test_cancel_many_waiting_on_a_claim_sees_the_claimed_job_as_running(
    backend: Backend, db_url: str
) -> None:
    """A claim that commits while cancel_many waits for its lock: the statement re-reads
    the row (PostgreSQL re-checks its new version; SQLite runs after the claim), so the job
    is asked to stop rather than cancelled under its worker."""
    claimed, queued = insert(backend, 2, queue="held")
    claim = "UPDATE offload_jobs SET state = 'running', attempt = 1, worker = 'w9' WHERE id = ?"
    if is_sqlite(db_url):
        holder = sqlite3.connect(sqlite_path(db_url), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute(claim, [claimed])
        commit = holder.commit
    else:
        pg = psycopg.connect(db_url)
        pg.execute(claim.replace("?", "%s").encode(), [claimed])
        commit = pg.commit
    result: list[list[JobChange]] = []
    thread = threading.Thread(target=lambda: result.append(backend.jobs.cancel_many(JobFilter())))
    thread.start()
    thread.join(0.5)
    assert thread.is_alive(), "cancel_many did not wait for the claim's lock"
    commit()
    thread.join(30)
    (changed,) = result
    assert {c.id: c.state for c in changed} == {
        claimed: JobState.RUNNING,
        queued: JobState.CANCELLED,
    }
    assert states_of(db_url) == {claimed: ("running", True), queued: ("cancelled", True)}


# -- purge ------------------------------------------------------------------------------


def test_purge_deletes_only_jobs_that_are_over(backend: Backend, db_url: str) -> None:
    ids = one_of_each(backend)
    (shed,) = insert(backend, 1)
    RawDB(db_url).execute("UPDATE offload_jobs SET state = 'shed' WHERE id = ?", [shed])
    assert backend.jobs.purge(JobFilter(state=JobState.DEAD)) == 1
    assert backend.jobs.purge(JobFilter(queue="default")) == 3  # succeeded, cancelled, shed
    assert backend.jobs.purge(JobFilter(queue="default")) == 0
    left = states_of(db_url)
    assert sorted(left) == sorted(
        ids[s] for s in (JobState.RUNNING, JobState.SCHEDULED, JobState.AVAILABLE)
    )


# -- through the App ---------------------------------------------------------------------


def test_the_app_refuses_an_empty_selection_and_a_state_never_changed(
    app: offload.App, db_url: str
) -> None:
    one_of_each(app.backend)
    snapshot = RawDB(db_url).all_rows()
    for operation in (app.retry_many, app.cancel_many, app.purge):
        with pytest.raises(ValidationError, match="needs job ids or at least one filter"):
            operation()
        with pytest.raises(ValidationError, match="needs job ids or at least one filter"):
            operation(queue=None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="retry takes jobs that are cancelled, dead, shed"):
        app.retry_many(state="running")
    with pytest.raises(ValidationError, match="not 'succeeded'"):
        app.cancel_many(state=JobState.SUCCEEDED)
    with pytest.raises(ValidationError, match="not 'available'"):
        app.purge(state="available")
    with pytest.raises(ValidationError, match="aware datetime"):
        app.purge(before="yesterday")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="ids must be ints"):
        app.purge(ids=["1"])  # type: ignore[list-item]
    assert RawDB(db_url).all_rows() == snapshot


def test_the_app_counts_back_relative_times_and_takes_everything_when_told(
    app: offload.App,
) -> None:
    ids = one_of_each(app.backend)
    assert app.cancel_many(before=timedelta(hours=1)) == []  # every job is newer
    changed = app.cancel_many(after=timedelta(hours=1))
    assert {c.id for c in changed} == {
        ids[s] for s in (JobState.AVAILABLE, JobState.SCHEDULED, JobState.RUNNING)
    }
    retried = app.retry_many(all_jobs=True)
    assert {c.id for c in retried} == {
        ids[s] for s in (JobState.DEAD, JobState.CANCELLED, JobState.AVAILABLE, JobState.SCHEDULED)
    }
    assert app.purge(all_jobs=True) == 1  # the succeeded job; the rest is queued or running
