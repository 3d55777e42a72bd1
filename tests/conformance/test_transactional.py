"""Transactional enqueue on the caller's own connection: committed with it or not at all."""

from __future__ import annotations

import select
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

import offload
from offload.backends.base import Listener
from offload.backends.params import ClaimParams
from offload.core.errors import ConfigurationError, JobNotFound
from offload.core.records import WorkerInfo
from offload.core.states import JobState
from tests.conformance.helpers import RawDB, is_sqlite, sqlite_path


@contextmanager
def caller_connection(url: str) -> Iterator[Any]:
    """The application's own connection, in its default (transactional) mode."""
    if is_sqlite(url):
        conn = sqlite3.connect(sqlite_path(url))
        try:
            yield conn
        finally:
            conn.close()
    else:
        with psycopg.connect(url) as pg:
            yield pg


@pytest.fixture
def task(app: offload.App) -> offload.Task[[int], int]:
    @app.task(name="ship")
    def ship(order: int) -> int:
        return order

    return ship


def _visible(app: offload.App, job_id: int) -> bool:
    try:
        app.backend.jobs.get(job_id)
    except JobNotFound:
        return False
    return True


def test_enqueue_is_visible_only_after_the_callers_commit(
    app: offload.App, task: offload.Task[[int], int], db_url: str
) -> None:
    with caller_connection(db_url) as conn:
        handle = task.options(conn=conn).enqueue(7)
        assert not _visible(app, handle.id)
        assert RawDB(db_url).count_jobs() == 0
        if not is_sqlite(db_url):  # (SQLite: the open transaction holds the only write lock)
            assert app.backend.claims.claim(ClaimParams("w1", "default", 10, 30.0)) == []
        conn.commit()
        assert _visible(app, handle.id)
        job = app.backend.jobs.get(handle.id)
        assert (job.task, job.args, job.state) == ("ship", [7], JobState.AVAILABLE)
        assert [j.id for j in app.backend.claims.claim(ClaimParams("w1", "default", 10, 30.0))] == [
            handle.id
        ]


def test_enqueue_is_absent_after_the_callers_rollback(
    app: offload.App, task: offload.Task[[int], int], db_url: str
) -> None:
    kept = task.enqueue(1)  # an ordinary enqueue, committed on its own
    with caller_connection(db_url) as conn:
        one = task.options(conn=conn).enqueue(2)
        many = task.options(conn=conn).enqueue_many([(3,), (4,)])
        conn.rollback()
    for job_id in (one.id, *(h.id for h in many)):
        assert not _visible(app, job_id)
    assert [row["id"] for row in RawDB(db_url).all_rows()] == [kept.id]
    assert app.backend.claims.claim(ClaimParams("w1", "default", 10, 30.0))[0].id == kept.id


def test_enqueue_commits_and_rolls_back_with_the_callers_own_rows(
    app: offload.App, task: offload.Task[[int], int], db_url: str
) -> None:
    raw = RawDB(db_url)
    raw.execute("CREATE TABLE orders (id integer PRIMARY KEY)")
    with caller_connection(db_url) as conn:
        for order, commit in ((1, False), (2, True)):
            conn.execute(
                "INSERT INTO orders (id) VALUES (?)"
                if is_sqlite(db_url)
                else "INSERT INTO orders (id) VALUES (%s)",
                (order,),
            )
            handle = task.options(conn=conn).enqueue(order)
            if commit:
                conn.commit()
            else:
                conn.rollback()
            assert _visible(app, handle.id) is commit
    assert raw.query("SELECT id FROM orders") == [{"id": 2}]
    assert [row["args"] for row in raw.all_rows()] == (["[2]"] if is_sqlite(db_url) else [[2]])


def test_explicit_transaction_on_an_autocommit_connection(
    app: offload.App, task: offload.Task[[int], int], db_url: str
) -> None:
    if is_sqlite(db_url):
        conn: Any = sqlite3.connect(sqlite_path(db_url), isolation_level=None)
        begin = "BEGIN IMMEDIATE"
    else:
        conn = psycopg.connect(db_url, autocommit=True)
        begin = "BEGIN"
    try:
        conn.execute(begin)
        task.options(conn=conn).enqueue(1)
        conn.execute("ROLLBACK")
        conn.execute(begin)
        committed = task.options(conn=conn).enqueue(2)
        assert not _visible(app, committed.id)
        conn.execute("COMMIT")
    finally:
        conn.close()
    assert [job.args for job in app.jobs()] == [[2]]
    assert app.backend.jobs.get(committed.id).args == [2]


def test_ids_of_rolled_back_enqueues_are_never_reused(
    app: offload.App,
    task: offload.Task[[int], int],
    db_url: str,
    request: pytest.FixtureRequest,
) -> None:
    """A handle from a rolled-back enqueue must not come to name someone else's job.

    PostgreSQL sequences are not transactional, so the id stays unused. SQLite numbers a job
    after the newest stored or deleted (schema 22), and a rolled-back insert leaves neither,
    so the next insert gets the same id: the two backends differ (reported, see the suite's
    notes)."""
    if is_sqlite(db_url):
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason="SQLite reuses the id of a rolled-back transactional enqueue",
            )
        )
    with caller_connection(db_url) as conn:
        rolled_back = task.options(conn=conn).enqueue(1)
        conn.rollback()
    later = task.enqueue(2)
    assert later.id != rolled_back.id
    with pytest.raises(JobNotFound):
        rolled_back.job()


def test_a_connection_of_the_other_kind_is_refused(
    app: offload.App, task: offload.Task[[int], int], db_url: str, tmp_path: Any
) -> None:
    wrong: Any = object()
    other = None
    if not is_sqlite(db_url):
        other = sqlite3.connect(tmp_path / "other.db")
        wrong = other
    try:
        with pytest.raises(ConfigurationError, match="conn must be a"):
            task.options(conn=wrong).enqueue(1)
    finally:
        if other is not None:
            other.close()
    assert RawDB(db_url).count_jobs() == 0


def _readable(listener: Listener, timeout: float) -> bool:
    return bool(select.select([listener.fileno()], [], [], timeout)[0])


def test_a_listening_worker_is_woken_when_the_caller_commits_not_before(
    app: offload.App, task: offload.Task[[int], int], db_url: str
) -> None:
    listener = app.backend.listener()
    try:
        now = app.backend.now()
        info = WorkerInfo("w1", "host", 1, ["default"], 1, now, now, wake=listener.address)
        app.backend.workers.register(info)
        with caller_connection(db_url) as conn:
            task.options(conn=conn).enqueue(7)
            # A wake-up now would find nothing to claim, and none comes until the next one.
            assert not _readable(listener, 0.3)
            conn.commit()
            assert _readable(listener, 5.0), "no wake-up after the caller's commit"
            listener.drain()
        claimed = app.backend.claims.claim(ClaimParams("w1", "default", 10, 30.0))
        assert [job.args for job in claimed] == [[7]]
    finally:
        listener.close()


def test_closing_right_after_a_callers_commit_never_hangs(db_url: str) -> None:
    """The wake-up sent for a caller's commit and the App's close take locks of their own:
    neither may wait for the other (a close once hung for good here, 1 run in 8)."""

    def cycles() -> None:
        for n in range(150):
            app = offload.App(db_url)
            app.migrate()
            ship = app.task(name="ship")(lambda order: order)
            with caller_connection(db_url) as conn:
                ship.options(conn=conn).enqueue(n)
                conn.commit()
            app.close()

    runner = threading.Thread(target=cycles, daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "App.close() hung after a transactional enqueue"


def test_an_autocommit_connection_outside_a_transaction_is_refused(
    app: offload.App, task: offload.Task[[int], int], db_url: str
) -> None:
    # Each statement of an enqueue or a publish would commit alone: a publish's offset could
    # commit before its message, and a reader could move past it for good.
    conn: Any
    if is_sqlite(db_url):
        conn = sqlite3.connect(sqlite_path(db_url), isolation_level=None)
    else:
        conn = psycopg.connect(db_url, autocommit=True)
    try:
        with pytest.raises(offload.ValidationError, match="autocommit mode"):
            task.options(conn=conn).enqueue(1)
        with pytest.raises(offload.ValidationError, match="autocommit mode"):
            app.publish("t", {"n": 1}, conn=conn)
    finally:
        conn.close()
    assert app.jobs() == []
    assert all(topic.messages == 0 for topic in app.topics())


class _Pep249Autocommit(sqlite3.Connection):
    """A connection as Python 3.12's `sqlite3.connect(autocommit=True)` makes it: PEP 249's
    autocommit on, isolation_level left at its default."""

    autocommit = True


def test_a_pep_249_autocommit_sqlite_connection_is_refused_too(sqlite_url: str) -> None:
    # A batch's ids are read back after its insert: outside one transaction another writer's
    # batch could commit between the two, and the handles would name its jobs.
    app = offload.App(sqlite_url)
    job = app.task(name="job")(lambda n: n)
    conn = sqlite3.connect(sqlite_path(sqlite_url), factory=_Pep249Autocommit)
    try:
        assert conn.isolation_level is not None  # not the legacy mode the older check knew
        with pytest.raises(offload.ValidationError, match="autocommit mode"):
            job.options(conn=conn).enqueue_many([offload.call(1), offload.call(2)])
    finally:
        conn.close()
        app.close()
