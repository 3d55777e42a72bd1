"""Job ids and event positions are never given twice, even after the newest are deleted: a
handle must not come to name another job, and an event stream's cursor must not skip new
events. PostgreSQL's sequences keep the rule; SQLite since schema 22 without AUTOINCREMENT,
by a mark only deletes write (offload_high_water), so these go through every writer of each
(the single and batched inserts, the enqueue's event, a change's event, a notify), several
connections and another process.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import offload
from offload.backends import open_backend
from offload.backends.base import Backend
from offload.backends.params import JobFilter
from offload.core.events import EventCursor
from tests.conformance.helpers import RawDB, insert, sqlite_path

#: Run in another process: store one job with a fresh backend on the URL, print its id.
_INSERT_ONE = """
import sys
from offload.backends import open_backend
from offload.backends.params import JobInsertParams
from offload.core.job import JobSpec, Payload
backend = open_backend(sys.argv[1])
print(backend.jobs.insert(JobInsertParams(JobSpec("t", "default"), [Payload()])).ids[0])
backend.close()
"""


def _insert_elsewhere(url: str) -> int:
    """The id of one job stored by another process."""
    done = subprocess.run(
        [sys.executable, "-c", _INSERT_ONE, url], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def test_job_ids_stay_past_the_newest_deleted_across_connections_and_processes(
    backend: Backend, db_url: str
) -> None:
    given = insert(backend, 4)
    second = open_backend(db_url)
    try:
        for job_id in given[2:]:
            backend.jobs.cancel(job_id)
        assert second.jobs.purge(JobFilter()) == 2  # the two newest, by another connection
        (one,) = insert(backend, 1)
        assert one > given[-1]
        many = insert(second, 3)
        assert one < many[0] < many[1] < many[2]
        RawDB(db_url).execute("DELETE FROM offload_jobs")  # every job, a user's statement
        elsewhere = _insert_elsewhere(db_url)
        assert elsewhere > many[-1]
    finally:
        second.close()
    RawDB(db_url).execute(f"DELETE FROM offload_jobs WHERE id = {elsewhere}")
    reopened = open_backend(db_url)
    try:
        (last,) = insert(reopened, 1)
    finally:
        reopened.close()
    assert last > elsewhere


def _cursors(app: offload.App) -> list[EventCursor]:
    return [event.cursor for event in app.events()]


def _prune_all(app: offload.App, count: int) -> None:
    """Prune every event once the database's clock is past them; there were `count`."""
    moment = app.backend.now()
    while app.backend.now() <= moment:
        time.sleep(0.01)
    assert app.backend.events.prune(0.0) == count and app.events() == []


def test_event_positions_stay_past_pruned_events_for_every_writer(
    app: offload.App, echo: offload.Task[..., Any], db_url: str
) -> None:
    newest = app.notify("c", "old")
    _prune_all(app, 1)
    job_id = _insert_elsewhere(db_url)  # its `enqueued` event, written by another process
    (enqueued,) = _cursors(app)
    assert enqueued > newest
    app.backend.jobs.cancel(job_id)  # an event a change's statement writes
    cancelled = _cursors(app)[-1]
    assert cancelled > enqueued
    _prune_all(app, 2)
    other = offload.App(db_url)
    try:
        notified = other.notify("c", "new")  # another connection's notify
    finally:
        other.close()
    assert notified > cancelled
    echo.enqueue_many([(i,) for i in range(3)])  # a batch's events after it
    cursors = _cursors(app)
    assert cursors[0] == notified and len(cursors) == 4
    assert cursors == sorted(set(cursors))


def test_a_lone_sqlite_enqueue_commits_four_wal_pages(sqlite_url: str) -> None:
    """The job row, its claim index, the event row and its job index: no counter's page
    (schema 22). Page counts, not time: each commit appends its dirty pages once."""
    wal = Path(sqlite_path(sqlite_url) + "-wal")
    app = offload.App(sqlite_url)
    try:
        task = app.task(name="t")(lambda: None)
        for _ in range(3):
            task.enqueue()  # the tables and indexes exist, their pages too
        raw = sqlite3.connect(sqlite_path(sqlite_url))
        try:
            page = raw.execute("PRAGMA page_size").fetchone()[0]
            frames = []
            for _ in range(3):
                # The log starts over empty: the next commit appends its header and frames.
                assert raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
                assert wal.stat().st_size == 0
                task.enqueue()
                frames.append((wal.stat().st_size - 32) / (page + 24))
        finally:
            raw.close()
    finally:
        app.close()
    assert frames == [4, 4, 4]


def test_a_batch_numbered_as_the_release_before_schema_22_did_fails_and_stores_nothing(
    tmp_path: Path,
) -> None:
    """A process of the previous release still running after SQLite's upgrade to schema 22
    numbered a batch from `offload_jobs`' row in sqlite_sequence: that batch now fails
    instead of taking ids from a counter that no longer moves (SQLite's own: PostgreSQL
    numbers by sequences)."""
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    app = offload.App(url)

    @app.task(name="t")
    def t() -> None: ...

    app.migrate()
    t.enqueue_many([(), (), ()])
    app.close()
    raw = RawDB(url)
    with pytest.raises(sqlite3.IntegrityError, match="datatype mismatch"):
        raw.execute(
            "INSERT INTO offload_jobs (id, task, queue, state, run_at, enqueued_at)"
            " SELECT (SELECT coalesce(max(seq), 0) FROM sqlite_sequence"
            "         WHERE name = 'offload_jobs') + p.key + 1,"
            " 't', 'default', 'available', 0, 0 FROM json_each('[1, 2]') AS p"
        )
    assert raw.count_jobs() == 3
