"""Helpers of the conformance suite: raw SQL access beside the backend, job builders, clocks.

`RawDB` opens its own short-lived connection for every call, so the tests can look at (and,
for schema tests, tamper with) the stored rows without going through the code under test.
Queries are written with `?` placeholders; they become `%s` for psycopg.
"""

from __future__ import annotations

import itertools
import select
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson
import psycopg

from offload.backends.base import Backend, Listener
from offload.backends.params import ClaimParams, FinishParams, JobInsertParams, Lease, Outcome
from offload.core.job import Job, JobSpec, Payload
from offload.core.shaping import KeyRules
from offload.core.states import JobState

#: A lease short enough to expire within a test, long enough to be valid when read back.
SHORT_LEASE = 0.3


def sqlite_path(url: str) -> str:
    """The file of a `sqlite:///...` URL (the fixtures always give absolute paths)."""
    assert url.startswith("sqlite:///"), url
    return url[len("sqlite:///") :].split("?", 1)[0]


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


class RawDB:
    """Direct SQL on the database behind a URL, bypassing offload."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = is_sqlite(url)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a SELECT as dicts (column name -> value)."""
        if self.sqlite:
            db = sqlite3.connect(sqlite_path(self.url))
            try:
                cur = db.execute(sql, tuple(params))
                names = [d[0] for d in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            finally:
                db.close()
        with psycopg.connect(self.url, autocommit=True) as conn:
            pg_cur = conn.execute(sql.replace("?", "%s").encode(), tuple(params))
            assert pg_cur.description is not None
            names = [d.name for d in pg_cur.description]
            return [dict(zip(names, row, strict=True)) for row in pg_cur.fetchall()]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement and commit."""
        if self.sqlite:
            db = sqlite3.connect(sqlite_path(self.url))
            try:
                with db:
                    db.execute(sql, tuple(params))
            finally:
                db.close()
            return
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.replace("?", "%s").encode(), tuple(params))

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        assert len(rows) == 1, rows
        return next(iter(rows[0].values()))

    def job_row(self, job_id: int) -> dict[str, Any]:
        """Every column of one job row, exactly as stored."""
        rows = self.query("SELECT * FROM offload_jobs WHERE id = ?", [job_id])
        assert len(rows) == 1, f"job {job_id}: {rows}"
        return rows[0]

    def all_rows(self) -> list[dict[str, Any]]:
        """Every job row, by id."""
        return self.query("SELECT * FROM offload_jobs ORDER BY id")

    def events(self) -> list[dict[str, Any]]:
        """Every event row, by position."""
        return self.query("SELECT * FROM offload_events ORDER BY position")

    def count_jobs(self) -> int:
        return int(self.scalar("SELECT count(*) AS n FROM offload_jobs"))

    def tables(self) -> list[str]:
        """Names of the tables in the database (offload's and any other)."""
        if self.sqlite:
            rows = self.query(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        else:
            rows = self.query(
                "SELECT tablename AS name FROM pg_catalog.pg_tables "
                "WHERE schemaname = current_schema() ORDER BY tablename"
            )
        return [str(row["name"]) for row in rows]

    def schema_snapshot(self) -> list[tuple[Any, ...]]:
        """A description of tables, columns and indexes, to compare before and after."""
        if self.sqlite:
            rows = self.query(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
            )
        else:
            rows = self.query(
                "SELECT table_name, column_name, data_type, column_default, is_nullable "
                "FROM information_schema.columns WHERE table_schema = current_schema() "
                "UNION ALL SELECT tablename, indexname, indexdef, NULL, NULL "
                "FROM pg_catalog.pg_indexes WHERE schemaname = current_schema() "
                "ORDER BY 1, 2"
            )
        return [tuple(row.values()) for row in rows]


@dataclass(frozen=True, slots=True)
class NewJob:
    """One job to store in a test: its spec and its payload."""

    spec: JobSpec
    payload: Payload


#: The keys `new_job` takes as options but stores in the job's payload.
KEYS = ("limit_key", "unique_key", "group_key", "replace_key")


def new_job(
    task: str = "t",
    queue: str = "default",
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    **options: Any,
) -> NewJob:
    """A job with JSON-encoded payloads (options: priority, delay, max_attempts, ...,
    and the payload's `KEYS`); a unique, idempotency or replace key takes the keyed path
    (default `KeyRules` unless `rules` is given)."""
    keys = {name: options.pop(name) for name in KEYS if name in options}
    keyed = idempotency_key is not None or any(
        keys.get(name) is not None for name in ("unique_key", "replace_key")
    )
    if keyed:
        options.setdefault("rules", KeyRules())
    payload = Payload(
        orjson.dumps(args or []).decode(),
        orjson.dumps(kwargs or {}).decode(),
        idempotency_key,
        **keys,
    )
    return NewJob(JobSpec(task=task, queue=queue, **options), payload)


def insert_jobs(backend: Backend, jobs: Sequence[NewJob], conn: Any = None) -> list[int]:
    """Store jobs, one insert per run of jobs sharing a spec (jobs with keys and without
    go together, on the keyed path); ids in input order."""
    ids: list[int] = []
    for spec, run in itertools.groupby(jobs, key=lambda job: replace(job.spec, rules=None)):
        batch = list(run)
        rules = next((job.spec.rules for job in batch if job.spec.rules is not None), None)
        payloads = [job.payload for job in batch]
        params = JobInsertParams(replace(spec, rules=rules), payloads, conn)
        ids += backend.jobs.insert(params).ids
    return ids


def insert(backend: Backend, n: int = 1, **options: Any) -> list[int]:
    """Insert `n` jobs of one spec (args [index]) in one statement; return their ids."""
    return insert_jobs(backend, [new_job(args=[i], **options) for i in range(n)])


def claim_one(backend: Backend, worker: str = "w1", queue: str = "default", **kw: Any) -> Job:
    """Claim exactly one job (fails the test if none is due)."""
    jobs = backend.claims.claim(ClaimParams(worker, queue, 1, kw.get("lease", 30.0)))
    assert len(jobs) == 1, f"expected one due job in {queue!r}, claimed {jobs}"
    return jobs[0]


def lease_of(job: Job) -> Lease:
    return Lease(job.id, job.attempt)


def error_json(kind: str = "ValueError", message: str = "boom", attempt: int = 0) -> str:
    """One error entry as a worker records it."""
    return orjson.dumps(
        {"type": kind, "message": message, "traceback": None, "at": time.time(), "attempt": attempt}
    ).decode()


def wait_db_time_past(backend: Backend, moment: datetime, timeout: float = 10.0) -> None:
    """Sleep until the database's clock is past `moment` (leases and run_at use that clock)."""
    deadline = time.monotonic() + timeout
    while backend.now() <= moment:
        assert time.monotonic() < deadline, f"database clock never passed {moment}"
        time.sleep(0.02)


def expire_lease(backend: Backend, job: Job) -> None:
    """Wait until the lease `job` was claimed with has run out by the database's clock."""
    assert job.lease_until is not None
    wait_db_time_past(backend, job.lease_until)


def finish_next(backend: Backend, state: JobState, queue: str = "default") -> int:
    """Claim the next job of `queue` and end it in `state`; return its id."""
    job = claim_one(backend, queue=queue)
    error = None if state is JobState.SUCCEEDED else error_json()
    outcome = Outcome(job.id, job.attempt, state, result="1" if error is None else None)
    if error is not None:
        outcome = Outcome(job.id, job.attempt, state, error=error, delay=60.0)
    assert backend.claims.finish(FinishParams("w1", [outcome])) == []
    return job.id


def woken(listener: Listener, timeout: float = 5.0) -> bool:
    """Whether a wake-up reaches `listener` within `timeout` seconds (drained after)."""
    ready = bool(select.select([listener.fileno()], [], [], timeout)[0])
    listener.drain()
    return ready
