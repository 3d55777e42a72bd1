"""RELIABILITY 29, migrations: from every earlier schema version, with jobs in every state,
a schedule, a tick and a worker stored, `migrate` reaches exactly the fresh schema, keeps
every row, and every job still reads and processes.

The earlier versions are read from the shipped `migrations/` folders, so a new migration
is covered without touching this file. Rows are written with raw SQL using only the
columns of schema 1 (no API reaches every state, and today's queries may need columns an
old schema lacks); `test_schema.py` covers fresh installs and refusals.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from offload.backends import open_backend
from offload.backends.params import (
    ClaimParams,
    FinishParams,
    HeartbeatParams,
    JobFilter,
    JobInsertParams,
    JobListParams,
    JobRetryParams,
    Lease,
    Outcome,
)
from offload.backends.sql.connector import SqlBackend
from offload.backends.sql.queries import migration_files
from offload.core.job import JobSpec, Payload
from offload.core.states import JobState
from tests.conformance.helpers import RawDB, is_sqlite, sqlite_path
from tests.pgserver import fresh_database

SQLITE, POSTGRES = "offload.backends.sqlite", "offload.backends.postgres"
VERSIONS = [version for version, _ in migration_files(SQLITE)]
#: Every released schema older than the newest: each is upgraded in a test of its own.
EARLIER = VERSIONS[:-1]
NOW = datetime.now(UTC).replace(microsecond=0)
HOUR = timedelta(hours=1)
ERROR = {"type": "ValueError", "message": "boom", "traceback": None, "at": 1.5e9, "attempt": 1}
# One row per state (two running: one asked to cancel), with every optional column used
# somewhere. Times are offsets from NOW; JSON columns hold text, NUL escape included.
JOBS: list[dict[str, Any]] = [
    {"state": "waiting", "group_key": "g1"},
    {"state": "scheduled", "run_at": 24 * HOUR, "unique_key": "u-scheduled", "priority": 5},
    {
        "state": "available",
        "args": '["\\u0000", {"a": [1, 2.5, null]}]',
        "kwargs": '{"k": "é"}',
        "idempotency_key": "idem-1",
        "meta": '{"trace": "00-abc-01"}',
    },
    {
        "state": "running",
        "attempt": 1,
        "started_at": -HOUR,
        "lease_until": HOUR,
        "worker": "w-old",
        "progress": '{"fraction": 0.5, "message": "half"}',
    },
    {
        "state": "running",
        "attempt": 2,
        "started_at": -HOUR,
        "lease_until": HOUR,
        "worker": "w-old",
        "cancel_requested": True,
        "errors": [ERROR],
    },
    {"state": "retrying", "attempt": 1, "worker": "w-old", "errors": [ERROR]},
    {
        "state": "succeeded",
        "attempt": 1,
        "worker": "w-old",
        "started_at": -HOUR,
        "finished_at": -HOUR,
        "result": '{"ok": true, "n": 12345678901234567890}',
    },
    {"state": "dead", "attempt": 3, "worker": "w-old", "finished_at": -HOUR, "errors": [ERROR] * 3},
    {"state": "cancelled", "finished_at": -HOUR, "cancel_requested": True},
    {"state": "shed", "priority": -3},
]


@contextmanager
def sql_backend(url: str) -> Iterator[SqlBackend]:
    backend = open_backend(url)
    assert isinstance(backend, SqlBackend)
    try:
        yield backend
    finally:
        backend.close()


def _build_at(url: str, version: int) -> None:
    """Apply migrations 1..`version` exactly as a release of that version would have."""
    with sql_backend(url) as backend:
        for number, sql in migration_files(backend.package):
            if number <= version:
                backend.apply_migration(number, sql)
        assert backend.schema.version() == version


def _seed(raw: RawDB, version: int) -> list[int]:
    """Store the rows of JOBS (and of the other tables the schema has); their ids in order."""

    def at(offset: timedelta | None) -> Any:
        if offset is None:
            return None
        moment = NOW + offset
        return moment.timestamp() if raw.sqlite else moment

    seeded: list[int] = []
    for row in JOBS:
        values = {
            "task": "t",
            "queue": "default",
            "args": row.get("args", "[1]"),
            "kwargs": row.get("kwargs", "{}"),
            "priority": row.get("priority", 0),
            "state": row["state"],
            "attempt": row.get("attempt", 0),
            "max_attempts": 3,
            "run_at": at(row.get("run_at", -HOUR)),
            "enqueued_at": at(-2 * HOUR),
            "started_at": at(row.get("started_at")),
            "finished_at": at(row.get("finished_at")),
            "lease_until": at(row.get("lease_until")),
            "worker": row.get("worker"),
            "result": row.get("result"),
            "errors": orjson.dumps(row.get("errors", [])).decode(),
            "unique_key": row.get("unique_key"),
            "idempotency_key": row.get("idempotency_key"),
            "group_key": row.get("group_key"),
            "meta": row.get("meta", "{}"),
            "cancel_requested": row.get("cancel_requested", False),
            "progress": row.get("progress"),
        }
        if version >= 5:  # the claim order column, NOT NULL on PostgreSQL from schema 5
            priority = timedelta(minutes=int(values["priority"]))
            values["sort_at"] = at(row.get("run_at", -HOUR) - priority)
        # JSON goes as text: psycopg sends a str untyped, so the column's type applies.
        raw.execute(
            f"INSERT INTO offload_jobs ({', '.join(values)}) "
            f"VALUES ({', '.join('?' for _ in values)})",
            list(values.values()),
        )
        seeded.append(int(raw.scalar("SELECT max(id) AS id FROM offload_jobs")))
    succeeded = seeded[[row["state"] for row in JOBS].index("succeeded")]
    tables = raw.tables()
    if "offload_workers" in tables:
        raw.execute(
            "INSERT INTO offload_workers (id, host, pid, queues, concurrency, started_at, "
            "heartbeat_at, wake) VALUES ('w-old', 'host-1', 4242, ?, 4, ?, ?, NULL)",
            ['["default", "mail"]', at(-HOUR), at(-HOUR / 60)],
        )
    if "offload_schedules" in tables:
        raw.execute(
            "INSERT INTO offload_schedules (name, cron, tz, task, misfire, paused, last_tick, "
            "checked_at, last_job_id, created_at) VALUES ('nightly', '0 3 * * *', "
            "'Europe/Paris', 't', 'last', ?, ?, ?, ?, ?)",
            [True, at(-HOUR), at(-HOUR), succeeded, at(-48 * HOUR)],
        )
    if "offload_cron_ticks" in tables:
        raw.execute(
            "INSERT INTO offload_cron_ticks (schedule, tick_at, job_id) VALUES ('nightly', ?, ?)",
            [at(-HOUR), succeeded],
        )
    return seeded


def _contents(raw: RawDB) -> dict[str, list[dict[str, Any]]]:
    """Every row of every offload table, in primary-key order."""
    return {
        table: raw.query(f"SELECT * FROM {table} ORDER BY 1, 2")
        for table in raw.tables()
        if table.startswith("offload_")
    }


def _fresh_twin(url: str) -> str:
    """A second, empty database beside `url`'s, on the same server or in the same folder."""
    if is_sqlite(url):
        return f"sqlite:///{sqlite_path(url)}-fresh.db"
    name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    return fresh_database(url, f"{name}_fresh")


def test_both_backends_ship_the_same_migrations() -> None:
    assert [v for v, _ in migration_files(POSTGRES)] == VERSIONS
    assert list(range(1, len(VERSIONS) + 1)) == VERSIONS, "versions are numbered 1, 2, ..."


@pytest.mark.parametrize("version", EARLIER)
def test_upgrade_keeps_every_row_and_reaches_the_fresh_schema(db_url: str, version: int) -> None:
    raw = RawDB(db_url)
    _build_at(db_url, version)
    seeded = _seed(raw, version)
    ids: dict[str, list[int]] = {}
    for row, job_id in zip(JOBS, seeded, strict=True):
        ids.setdefault(row["state"], []).append(job_id)
    before = _contents(raw)

    with sql_backend(db_url) as backend:
        assert backend.schema.migrate() == VERSIONS[-1]
        backend.schema.check()
    twin = _fresh_twin(db_url)
    with sql_backend(twin) as fresh:
        fresh.schema.migrate()
    assert raw.schema_snapshot() == RawDB(twin).schema_snapshot()

    after = _contents(raw)
    assert [r["version"] for r in after["offload_schema"]] == VERSIONS
    assert before.pop("offload_schema") == after["offload_schema"][:version]
    for table, rows in before.items():
        # Columns a later migration added are the new schema's business; old ones are kept.
        assert len(after[table]) == len(rows), table
        kept = [{k: row[k] for k in old} for row, old in zip(after[table], rows, strict=True)]
        assert kept == rows, table
    # Running the migration again changes nothing at all.
    with sql_backend(db_url) as backend:
        assert backend.schema.migrate() == VERSIONS[-1]
    assert _contents(raw) == after

    with sql_backend(db_url) as backend:
        _check_readable(backend, seeded, version)
        _process_everything(backend, ids)


def _check_readable(backend: SqlBackend, seeded: list[int], version: int) -> None:
    """Every job reads back as seeded through `get`, `list` and `counts`."""
    for row, job_id in zip(JOBS, seeded, strict=True):
        job = backend.jobs.get(job_id)
        assert (job.state, job.attempt, job.worker) == (
            JobState(row["state"]),
            row.get("attempt", 0),
            row.get("worker"),
        )
        assert job.args == orjson.loads(row.get("args", "[1]"))
        assert job.kwargs == orjson.loads(row.get("kwargs", "{}"))
        assert job.meta == orjson.loads(row.get("meta", "{}"))
        assert job.errors == row.get("errors", [])
        assert job.cancel_requested is row.get("cancel_requested", False)
        assert job.result == (orjson.loads(row["result"]) if "result" in row else None)
        assert (job.idempotency_key, job.unique_key, job.group_key) == (
            row.get("idempotency_key"),
            row.get("unique_key"),
            row.get("group_key"),
        )
        assert job.run_at == NOW + row.get("run_at", -HOUR)
        assert job.enqueued_at == NOW - 2 * HOUR
        if "lease_until" in row:
            assert job.lease_until == NOW + row["lease_until"]
        if "progress" in row:
            assert job.progress == orjson.loads(row["progress"])
    every = [job.id for job in backend.jobs.list(JobListParams(limit=100))]
    assert every == sorted(seeded, reverse=True)
    states = [row["state"] for row in JOBS]
    assert backend.jobs.counts() == {"default": {s: states.count(s) for s in states}}
    for state in set(states):
        listed = backend.jobs.list(JobListParams(JobFilter(state=JobState(state))))
        assert sorted(j.id for j in listed) == [
            i for s, i in zip(states, seeded, strict=True) if s == state
        ]
    (old,) = backend.workers.list()
    assert (old.id, old.queues, old.pid) == ("w-old", ["default", "mail"], 4242)
    schedules = backend.schedules.list()
    if version >= 2:
        assert [(s.name, s.tz, s.paused, s.last_job_id) for s in schedules] == [
            ("nightly", "Europe/Paris", True, seeded[states.index("succeeded")])
        ]
        assert schedules[0].last_state is JobState.SUCCEEDED
    else:
        assert schedules == []


def _process_everything(backend: SqlBackend, ids: dict[str, list[int]]) -> None:
    """Carry every job to a finished state through today's API: the old rows still work."""
    claims = backend.claims

    def run(worker: str, job_ids: list[int], state: JobState = JobState.SUCCEEDED) -> None:
        jobs = [backend.jobs.get(i) for i in job_ids]
        outcomes = [Outcome(j.id, j.attempt, state, result="1") for j in jobs]
        assert claims.finish(FinishParams(worker, outcomes)) == []

    # The old worker still holds its two running jobs; one of them was asked to cancel.
    held = [Lease(i, backend.jobs.get(i).attempt) for i in ids["running"]]
    beat = claims.heartbeat(HeartbeatParams("w-old", held, 60.0))
    assert (beat.lost, beat.cancel) == ([], [ids["running"][1]])
    run("w-old", ids["running"][:1])
    run("w-old", ids["running"][1:], JobState.CANCELLED)
    # Due now: the available job, then the retrying one (higher priority first, then run_at).
    later = backend.now() + 48 * HOUR
    due = claims.claim(ClaimParams("w-new", "default", 10, 60.0))
    assert sorted(j.id for j in due) == sorted(ids["available"] + ids["retrying"])
    assert all(j.attempt == (2 if j.id in ids["retrying"] else 1) for j in due)
    run("w-new", [j.id for j in due])
    # The scheduled job once its time has come; the finished ones after an explicit retry.
    for state in ("dead", "cancelled", "shed"):
        assert backend.jobs.retry(JobRetryParams(ids[state][0])).state is JobState.AVAILABLE
    rest = claims.claim(ClaimParams("w-new", "default", 10, 60.0, now=later))
    assert sorted(j.id for j in rest) == sorted(
        ids["scheduled"] + ids["dead"] + ids["cancelled"] + ids["shed"]
    )
    run("w-new", [j.id for j in rest])
    # Nothing makes a waiting job available yet (dependencies come later): cancel it.
    assert backend.jobs.cancel(ids["waiting"][0]).state is JobState.CANCELLED
    assert backend.jobs.counts() == {"default": {"succeeded": 8, "cancelled": 2}}


def test_schema_18_keeps_the_id_sequence_past_the_newest_job_left(db_url: str) -> None:
    """SQLite's schema 18 rebuilds the job table: the newest id ever given stays given, even
    when that job was pruned before the upgrade (on PostgreSQL the script changes nothing)."""
    raw = RawDB(db_url)
    _build_at(db_url, 17)
    seeded = _seed(raw, 17)
    raw.execute(f"DELETE FROM offload_jobs WHERE id = {max(seeded)}")
    with sql_backend(db_url) as backend:
        assert backend.schema.migrate() == VERSIONS[-1]
        one = backend.jobs.insert(JobInsertParams(JobSpec("t", "default"), [Payload()])).ids
        many = backend.jobs.insert(JobInsertParams(JobSpec("t", "default"), [Payload()] * 3)).ids
    assert max(seeded) < one[0] < many[0] < many[1] < many[2]


def test_schema_18_upgrades_a_database_with_a_view_over_the_job_table(db_url: str) -> None:
    """A user's reporting view over the job table survives the rebuild and still reads it."""
    raw = RawDB(db_url)
    _build_at(db_url, 17)
    seeded = _seed(raw, 17)
    raw.execute("CREATE VIEW my_jobs AS SELECT id, state FROM offload_jobs")
    with sql_backend(db_url) as backend:
        assert backend.schema.migrate() == VERSIONS[-1]
    assert sorted(row["id"] for row in raw.query("SELECT id FROM my_jobs")) == sorted(seeded)


def test_schema_22_keeps_ids_and_positions_past_the_newest_deleted_and_the_views(
    db_url: str,
) -> None:
    """SQLite's schema 22 rebuilds the job and event tables without AUTOINCREMENT: the newest
    id and position ever given stay given though their rows are gone (the old sequence
    carries over), and a user's views over both tables still read them (on PostgreSQL the
    script changes nothing)."""
    raw = RawDB(db_url)
    _build_at(db_url, 20)
    seeded = _seed(raw, 20)
    (events,) = raw.query("SELECT count(*) AS n, max(position) AS newest FROM offload_events")
    assert events["n"] >= len(seeded)  # the seeded jobs' `enqueued` events
    raw.execute(f"DELETE FROM offload_jobs WHERE id = {max(seeded)}")
    raw.execute("DELETE FROM offload_events")
    raw.execute("CREATE VIEW my_jobs AS SELECT id, state FROM offload_jobs")
    raw.execute("CREATE VIEW my_events AS SELECT position, kind FROM offload_events")
    with sql_backend(db_url) as backend:
        assert backend.schema.migrate() == VERSIONS[-1]
        (one,) = backend.jobs.insert(JobInsertParams(JobSpec("t", "default"), [Payload()])).ids
    assert one > max(seeded)
    assert sorted(row["id"] for row in raw.query("SELECT id FROM my_jobs")) == sorted(
        [*seeded[:-1], one]
    )
    (event,) = raw.query("SELECT position, kind FROM my_events")
    assert event["kind"] == "enqueued" and event["position"] > events["newest"]


def test_table_rebuilds_keep_a_users_rows_that_reference_the_job_and_event_tables(
    db_url: str,
) -> None:
    """SQLite's schemas 18 and 22 rebuild `offload_jobs` and `offload_events`; a user's own
    table with foreign keys into them (cascading, nulling or plain) keeps every row, as it
    is, and the upgrade goes through (on PostgreSQL the scripts leave both tables alone)."""
    raw = RawDB(db_url)
    _build_at(db_url, 17)
    seeded = _seed(raw, 17)
    (newest,) = raw.query("SELECT max(position) AS p FROM offload_events")
    # PostgreSQL's events are keyed by (tx, position): the plain reference is SQLite's only.
    event = "REFERENCES offload_events (position)" if is_sqlite(db_url) else ""
    raw.execute(
        "CREATE TABLE my_notes (note TEXT,"
        " job_id BIGINT REFERENCES offload_jobs (id) ON DELETE CASCADE,"
        f" nulled BIGINT REFERENCES offload_jobs (id) ON DELETE SET NULL, event BIGINT {event})"
    )
    raw.execute(f"INSERT INTO my_notes VALUES ('kept', {seeded[0]}, {seeded[1]}, {newest['p']})")
    before = raw.query("SELECT * FROM my_notes")
    with sql_backend(db_url) as backend:
        assert backend.schema.migrate() == VERSIONS[-1]
        backend.jobs.insert(JobInsertParams(JobSpec("t", "default"), [Payload()]))
    assert raw.query("SELECT * FROM my_notes") == before


def test_a_users_own_dangling_or_unchecked_references_do_not_stop_a_sqlite_install(
    tmp_path: Path,
) -> None:
    """offload's migrations refuse only references they broke: rows of a user's own tables
    whose foreign key names no row (Python's sqlite3 leaves foreign keys off by default),
    or a key SQLite cannot check, are theirs, and the install goes through."""
    path = tmp_path / "app.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer REFERENCES customers)")
        conn.execute("INSERT INTO orders VALUES (1, 42)")  # no customer 42
        conn.execute("CREATE TABLE tags (name TEXT)")
        conn.execute("CREATE TABLE labels (tag TEXT REFERENCES tags (name))")  # not unique
    with sql_backend(f"sqlite:///{path}") as backend:
        assert backend.schema.migrate() == VERSIONS[-1]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT * FROM orders").fetchall() == [(1, 42)]
