"""The census a metrics scrape reads: jobs per queue and state with the oldest due wait, and
workers alive or lost, each in one statement on every backend."""

from __future__ import annotations

from datetime import timedelta

import offload
from offload.backends.base import Backend
from offload.backends.params import ClaimParams
from offload.core.records import Census, StateCensus, WorkerCensus, WorkerInfo
from offload.core.states import JobState
from tests.conformance.helpers import RawDB, finish_next, insert


def _age(db_url: str, job_ids: list[int], seconds: int) -> None:
    """Make jobs due `seconds` earlier than they were (enqueued and run_at moved back)."""
    raw = RawDB(db_url)
    back: object = seconds if raw.sqlite else timedelta(seconds=seconds)
    for job_id in job_ids:
        raw.execute(
            "UPDATE offload_jobs SET run_at = run_at - ?, enqueued_at = enqueued_at - ? "
            "WHERE id = ?",
            [back, back, job_id],
        )


def test_census_counts_jobs_per_queue_and_state_with_the_oldest_due_wait(
    backend: Backend, app: offload.App, db_url: str
) -> None:
    assert backend.jobs.census() == []
    a = insert(backend, 3, queue="a")
    b = insert(backend, 2, queue="b")
    insert(backend, 1, queue="b", delay=600.0)  # scheduled, not due: no wait
    [running] = backend.claims.claim(ClaimParams("w1", "a", 1, 30.0))
    _age(db_url, [running.id], 500)  # running: not waiting, however old
    waiting = [job_id for job_id in a if job_id != running.id]
    _age(db_url, waiting[:1], 100)
    _age(db_url, waiting[1:], 40)
    _age(db_url, b, 10)
    finish_next(backend, JobState.SUCCEEDED, queue="b")

    found = {(c.queue, c.state): c for c in backend.jobs.census()}
    assert {key: c.jobs for key, c in found.items()} == {
        ("a", JobState.AVAILABLE): 2,
        ("a", JobState.RUNNING): 1,
        ("b", JobState.AVAILABLE): 1,
        ("b", JobState.SCHEDULED): 1,
        ("b", JobState.SUCCEEDED): 1,
    }
    available_a = found[("a", JobState.AVAILABLE)].oldest_due
    assert available_a is not None and 100 <= available_a < 130
    available_b = found[("b", JobState.AVAILABLE)].oldest_due
    assert available_b is not None and 10 <= available_b < 40
    for key in [("a", JobState.RUNNING), ("b", JobState.SCHEDULED), ("b", JobState.SUCCEEDED)]:
        assert found[key].oldest_due is None, key


def test_a_retrying_job_whose_time_came_counts_as_waiting(backend: Backend, db_url: str) -> None:
    [job_id] = insert(backend, 1, queue="r")
    RawDB(db_url).execute("UPDATE offload_jobs SET state = 'retrying' WHERE id = ?", [job_id])
    _age(db_url, [job_id], 30)
    [row] = backend.jobs.census()
    assert (row.queue, row.state, row.jobs) == ("r", JobState.RETRYING, 1)
    assert row.oldest_due is not None and 30 <= row.oldest_due < 60


def test_worker_census_counts_alive_and_lost_workers_and_live_slots(
    backend: Backend, db_url: str
) -> None:
    assert backend.workers.census(30.0) == WorkerCensus(alive=0, lost=0, alive_slots=0)
    now = backend.now()
    for number, slots in ((1, 4), (2, 2), (3, 8)):
        backend.workers.register(WorkerInfo(f"h:{number}", "h", number, ["q"], slots, now, now))
    raw = RawDB(db_url)
    hour: object = 3600 if raw.sqlite else timedelta(hours=1)
    raw.execute("UPDATE offload_workers SET heartbeat_at = heartbeat_at - ? WHERE pid = 3", [hour])
    assert backend.workers.census(30.0) == WorkerCensus(alive=2, lost=1, alive_slots=6)


def test_app_census_reads_both(backend: Backend, app: offload.App) -> None:
    insert(backend, 2, queue="q")
    census = app.census()
    assert isinstance(census, Census)
    assert [(c.queue, c.state, c.jobs) for c in census.states] == [("q", JobState.AVAILABLE, 2)]
    assert all(isinstance(c, StateCensus) for c in census.states)
    assert census.workers == WorkerCensus(alive=0, lost=0, alive_slots=0)
