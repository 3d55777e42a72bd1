"""Enqueue: one and many, delayed jobs, priorities and queues (DESIGN.md section 1)."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

import offload
from offload.backends.base import Backend
from offload.backends.params import ClaimParams
from offload.backends.sqlite.backend import SQLiteBackend
from offload.core.errors import BackendError
from offload.core.job import Job
from offload.core.states import JobState
from tests.conformance.helpers import RawDB, claim_one, insert, insert_jobs, is_sqlite, new_job

CLOSE = timedelta(seconds=5)


def test_insert_one_stores_a_complete_available_row(backend: Backend) -> None:
    before = backend.now()
    (job_id,) = insert_jobs(
        backend,
        [
            new_job(
                "mail.send",
                "mail",
                args=[1, "two", None],
                kwargs={"x": [1.5, True]},
                priority=7,
                max_attempts=5,
                meta='{"trace": "abc"}',
                group_key="g1",
            )
        ],
    )
    after = backend.now()
    job = backend.jobs.get(job_id)
    assert job.id == job_id
    assert job.task == "mail.send"
    assert job.queue == "mail"
    assert job.args == [1, "two", None]
    assert job.kwargs == {"x": [1.5, True]}
    assert job.priority == 7
    assert job.state is JobState.AVAILABLE
    assert job.attempt == 0
    assert job.max_attempts == 5
    assert before <= job.enqueued_at <= after
    assert job.run_at == job.enqueued_at
    assert job.started_at is None
    assert job.finished_at is None
    assert job.lease_until is None
    assert job.worker is None
    assert job.result is None
    assert job.errors == []
    assert job.meta == {"trace": "abc"}
    assert job.group_key == "g1"


def test_insert_of_nothing_stores_nothing(backend: Backend, db_url: str) -> None:
    assert insert_jobs(backend, []) == []
    assert RawDB(db_url).count_jobs() == 0


def test_task_enqueue_returns_a_handle_on_the_committed_job(app: offload.App) -> None:
    @app.task(name="resize", queue="images", priority=3, max_attempts=4)
    def resize(path: str, width: int = 100) -> str:
        return path

    handle = resize.enqueue("/a.png", width=640)
    job = app.backend.jobs.get(handle.id)
    assert (job.task, job.queue, job.priority, job.max_attempts) == ("resize", "images", 3, 4)
    assert (job.args, job.kwargs) == (["/a.png"], {"width": 640})
    assert handle.status() is JobState.AVAILABLE
    # Per-call options override the task's defaults.
    other = resize.options(queue="urgent", priority=9, max_attempts=1, meta={"k": 1}).enqueue("b")
    job = app.backend.jobs.get(other.id)
    assert (job.queue, job.priority, job.max_attempts, job.meta) == ("urgent", 9, 1, {"k": 1})


def test_insert_many_returns_ascending_ids_in_input_order(backend: Backend) -> None:
    jobs = [new_job(args=[i], priority=i % 3, queue=f"q{i % 2}") for i in range(50)]
    ids = insert_jobs(backend, jobs)
    assert len(ids) == 50
    assert ids == sorted(ids)
    assert len(set(ids)) == 50
    for index, job_id in enumerate(ids):
        job = backend.jobs.get(job_id)
        assert job.args == [index], f"id {job_id} at position {index} holds {job.args}"
        assert job.queue == f"q{index % 2}"
        assert job.priority == index % 3
    # Later inserts get larger ids.
    (later,) = insert_jobs(backend, [new_job()])
    assert later > ids[-1]


def test_insert_many_never_reuses_the_ids_of_deleted_jobs(backend: Backend, db_url: str) -> None:
    """A batch's ids follow the newest id ever given, not the newest left: SQLite numbers a
    batch from the mark the delete left (schema 22; jobs.sql, insert_many)."""
    first = insert(backend, 5)
    RawDB(db_url).execute(f"DELETE FROM offload_jobs WHERE id >= {first[2]}")
    ids = insert_jobs(
        backend, [new_job(args=[i], kwargs={"k": i} if i % 2 else {}) for i in range(6)]
    )
    assert ids[0] > first[-1]
    assert ids == sorted(ids) and len(set(ids)) == 6
    for index, job_id in enumerate(ids):
        job = backend.jobs.get(job_id)
        assert (job.args, job.kwargs) == ([index], {"k": index} if index % 2 else {})
    assert insert(backend, 1)[0] > ids[-1]


def test_insert_many_is_one_statement_in_one_transaction(backend: Backend) -> None:
    statements: list[str] = []
    if backend.name == "sqlite":
        conn: sqlite3.Connection = cast(SQLiteBackend, backend)._conn()
        conn.set_trace_callback(statements.append)
    ids = insert(backend, 200)
    if backend.name == "sqlite":
        cast(SQLiteBackend, backend)._conn().set_trace_callback(None)
        # SQLite's trace repeats the statement's text as each row's event trigger runs, so
        # it cannot count executions: every traced insert is the one statement's text, in
        # one transaction (and the one clock reading below).
        inserts = {s for s in statements if "INSERT INTO offload_jobs" in s}
        assert len(inserts) == 1, inserts
        assert (statements.count("BEGIN IMMEDIATE"), statements.count("COMMIT")) == (1, 1)
    # One statement (SQLite) / one transaction (PostgreSQL) reads the clock once.
    stamps = {backend.jobs.get(job_id).enqueued_at for job_id in ids}
    assert len(stamps) == 1


def test_task_enqueue_many_keeps_input_order(app: offload.App) -> None:
    @app.task(name="add")
    def add(a: int, b: int = 0) -> int:
        return a + b

    handles = add.enqueue_many([offload.call(i, b=-i) if i % 2 else (i,) for i in range(30)])
    assert [h.id for h in handles] == sorted(h.id for h in handles)
    for i, handle in enumerate(handles):
        job = handle.job()
        assert job.args == [i]
        assert job.kwargs == ({"b": -i} if i % 2 else {})


def test_insert_many_is_all_or_nothing(backend: Backend, db_url: str) -> None:
    insert(backend, 3)
    raw = RawDB(db_url)
    before = raw.all_rows()
    # The database refuses the eighth row of the batch, after seven were written.
    if raw.sqlite:
        raw.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON offload_jobs WHEN NEW.args = '[7]' "
            "BEGIN SELECT RAISE(ABORT, 'row 8 refused'); END"
        )
    else:
        raw.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.args::text = '[7]' THEN RAISE EXCEPTION 'row 8 refused'; END IF; "
            "RETURN NEW; END $$"
        )
        raw.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON offload_jobs "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
    with pytest.raises(BackendError, match="row 8 refused"):
        insert(backend, 10)
    assert raw.all_rows() == before
    # The backend is still usable after the refused transaction.
    assert len(insert(backend, 2)) == 2


def test_delayed_job_is_scheduled_and_not_claimed_before_run_at(backend: Backend) -> None:
    (job_id,) = insert_jobs(backend, [new_job(delay=1.0)])
    job = backend.jobs.get(job_id)
    assert job.state is JobState.SCHEDULED
    assert abs((job.run_at - job.enqueued_at).total_seconds() - 1.0) < 0.01
    started = time.monotonic()
    claimed: list[Job] = []
    while not claimed:
        claimed = backend.claims.claim(ClaimParams("w1", "default", 10, 30.0))
        if not claimed:
            assert backend.now() < job.run_at + timedelta(seconds=0.5), "due job not claimed"
            time.sleep(0.05)
    waited = time.monotonic() - started
    (running,) = claimed
    assert running.id == job_id
    assert running.state is JobState.RUNNING
    assert running.started_at is not None
    assert running.started_at >= job.run_at
    assert waited >= 0.8


def test_task_delay_and_at_options_schedule_the_job(app: offload.App) -> None:
    @app.task(name="later")
    def later() -> None:
        return None

    by_delay = app.backend.jobs.get(later.options(delay=30).enqueue().id)
    at = datetime.now(UTC) + timedelta(seconds=60)
    by_at = app.backend.jobs.get(later.options(at=at).enqueue().id)
    assert by_delay.state is JobState.SCHEDULED
    assert by_at.state is JobState.SCHEDULED
    assert abs((by_delay.run_at - by_delay.enqueued_at).total_seconds() - 30) < 0.01
    assert abs((by_at.run_at - at).total_seconds()) < 2
    assert app.backend.claims.claim(ClaimParams("w1", "default", 10, 30.0)) == []


def test_claims_follow_priority_then_age(backend: Backend) -> None:
    priorities = [0, 5, -3, 5, 10, 0]
    ids = [insert_jobs(backend, [new_job(priority=p)])[0] for p in priorities]
    priority_of = dict(zip(ids, priorities, strict=True))
    expected = sorted(ids, key=lambda job_id: (-priority_of[job_id], job_id))
    # One at a time: the database picks the order, not the Python-side sort.
    order = [claim_one(backend).id for _ in priorities]
    assert order == expected
    assert backend.claims.claim(ClaimParams("w1", "default", 10, 30.0)) == []


def test_claim_batch_takes_the_highest_priorities(backend: Backend) -> None:
    low = insert(backend, 5, priority=-1)
    high = insert(backend, 3, priority=100)
    mid = insert(backend, 4, priority=0)
    claimed = backend.claims.claim(ClaimParams("w1", "default", 5, 30.0))
    assert [job.id for job in claimed] == [*high, *mid[:2]]
    rest = backend.claims.claim(ClaimParams("w1", "default", 100, 30.0))
    assert [job.id for job in rest] == [*mid[2:], *low]


def test_queues_are_isolated(backend: Backend) -> None:
    a = insert(backend, 3, queue="a")
    b = insert(backend, 2, queue="b")
    assert backend.claims.claim(ClaimParams("w1", "c", 10, 30.0)) == []
    assert sorted(job.id for job in backend.claims.claim(ClaimParams("w1", "b", 10, 30.0))) == b
    assert backend.claims.claim(ClaimParams("w1", "b", 10, 30.0)) == []
    for job_id in a:
        assert backend.jobs.get(job_id).state is JobState.AVAILABLE
    assert sorted(job.id for job in backend.claims.claim(ClaimParams("w1", "a", 10, 30.0))) == a


def test_enqueued_job_is_durable_across_connections(app: offload.App, db_url: str) -> None:
    @app.task(name="d")
    def d(x: int) -> int:
        return x

    handle = d.enqueue(41)
    # A separate connection (another process would see the same) finds the committed row.
    row = RawDB(db_url).job_row(handle.id)
    assert row["task"] == "d"
    assert row["state"] == "available"
    if is_sqlite(db_url):
        assert row["args"] == "[41]"
    else:
        assert row["args"] == [41]
    other = offload.App(db_url)
    try:
        assert other.backend.jobs.get(handle.id).args == [41]
    finally:
        other.close()


def test_an_idempotency_key_used_again_returns_the_first_job(app: offload.App) -> None:
    @app.task(name="charge")
    def charge(order: int) -> None:
        return None

    first = charge.options(idempotency_key="order-7").enqueue(7)
    again = charge.options(idempotency_key="order-7").enqueue(7)
    other = charge.options(idempotency_key="order-8").enqueue(8)
    assert again == first
    assert (first.duplicate, again.duplicate, other.duplicate) == (False, True, False)
    assert other != first
    with pytest.raises(offload.IdempotencyConflict, match="'order-7' is held by job") as info:
        charge.options(idempotency_key="order-7").enqueue(8)  # other arguments
    assert (info.value.key, info.value.job_id) == ("order-7", first.id)
    assert app.backend.jobs.get(first.id).args == [7]
    assert sum(app.queue_counts()["default"].values()) == 2


def test_a_batch_reports_ids_by_position_when_keys_are_taken(backend: Backend) -> None:
    (held,) = insert_jobs(backend, [new_job(args=["held"], idempotency_key="k1")])
    jobs = [
        new_job(args=[0]),
        new_job(args=["held"], idempotency_key="k1"),  # taken before
        new_job(args=[2], idempotency_key="k2"),
        new_job(args=[2], idempotency_key="k2"),  # taken earlier in the same batch
        new_job(args=[4]),
    ]
    ids = insert_jobs(backend, jobs)
    assert ids[1] == held
    assert ids[3] == ids[2]
    assert len({ids[0], ids[2], ids[4], held}) == 4
    assert [backend.jobs.get(job_id).args for job_id in ids] == [[0], ["held"], [2], [2], [4]]


def test_at_stores_the_exact_time_given(app: offload.App) -> None:
    @app.task(name="remind")
    def remind() -> None:
        return None

    at = datetime(2031, 5, 17, 9, 30, 15, 250_000, tzinfo=UTC)
    job = app.backend.jobs.get(remind.options(at=at).enqueue().id)
    assert job.run_at == at
    assert job.state is JobState.SCHEDULED
    # Not through the client's clock: a time in the past is stored as given, and is due.
    past = datetime(2001, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    due = app.backend.jobs.get(remind.options(at=past).enqueue().id)
    assert (due.run_at, due.state) == (past, JobState.AVAILABLE)
