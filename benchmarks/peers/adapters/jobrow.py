"""offload's job row alone: offload's own INSERT statements on offload's own schema, run on a
bare connection, with no offload Python between the call and the statement.

It is the ceiling of `Task.enqueue` / `Task.enqueue_many` on this disk. Between the raw rows
and this one lies the cost of the job row itself (its width, its indexes, its defaults);
between this row and offload lies offload's Python. Variants `sqlite` (WAL,
synchronous=FULL, `BEGIN IMMEDIATE` ... `COMMIT`) and `pg` (autocommit: one round trip).
Runs in offload's venv; the schema comes from offload's migrations.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

import offload
from benchmarks.peers.adapters.base import Adapter as Base

TEMPLATE: dict[str, Any] = {
    "task": "mark",
    "queue": "default",
    "kwargs": "{}",
    "priority": 0,
    "max_attempts": 3,
    "delay": 0.0,
    "run_at": None,
    "unique_key": None,
    "idempotency_key": None,
    "group_key": None,
    "meta": "{}",
}


class Adapter(Base):
    worker_note = "-"
    batch_api = "offload's batch insert statement, payloads prepared"
    conn: Any = None

    def setup(self) -> None:
        app = offload.App(self.url)
        app.migrate()
        backend: Any = app.backend
        q = backend.q
        if isinstance(q, dict):  # storage by area (--base may run an older tree)
            self.one, self.many = q["jobs"]["insert_one"], q["jobs"]["insert_many"]
        else:
            self.one, self.many = q["job_insert"], q["job_insert_batch"]
        app.close()
        if self.variant == "sqlite":
            self.conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
        else:
            import psycopg

            self.conn = psycopg.connect(self.url, autocommit=True)

    def teardown(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def _run(self, sql: str, params: dict[str, Any]) -> None:
        if self.variant == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(sql, params).fetchall()
            self.conn.execute("COMMIT")
        else:
            self.conn.execute(sql, params).fetchall()

    def enqueue_one(self, seq: int) -> None:
        self._run(self.one, {**TEMPLATE, "args": f"[{seq}]"})

    def enqueue_batch(self, seqs: Sequence[int]) -> None:
        payloads = orjson.dumps([(f"[{s}]", "{}", None) for s in seqs]).decode()
        params = {k: v for k, v in TEMPLATE.items() if k != "kwargs"}
        self._run(self.many, {**params, "payloads": payloads})

    def queued(self) -> int | None:
        row = self.conn.execute("SELECT count(*) FROM offload_jobs").fetchone()
        return int(row[0])

    def versions(self) -> dict[str, str]:
        return {"SQLite": sqlite3.sqlite_version} if self.variant == "sqlite" else {}
