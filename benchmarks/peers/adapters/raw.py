"""The storage's own limits on this disk, as rows beside the systems: no queue, no worker.

Variants (each on the same fresh storage the systems get):
* `sqlite`: a two-column table, WAL, synchronous=FULL; one row = `BEGIN IMMEDIATE; INSERT;
  COMMIT`; a batch = one transaction of `executemany`.
* `pg`: the rig's durable server; one row = one autocommit INSERT (one round trip, one
  commit); a batch = one transaction of `executemany` (psycopg pipelines it); a producer
  process of its own (`attach`) opens a connection of its own.
* `redis`: the rig's Redis (AOF as configured for the row), through redis-py with hiredis
  (the client the Redis-based peers use; this variant runs in the peers' venv); one row =
  one LPUSH; a batch = one LPUSH of all the values.
* `disk`: a file in the run's directory; one row = write 32 bytes + fdatasync; a batch = one
  write of all of them + fdatasync (the disk's sync rate: the ceiling of a durable ack).
The other variants run in offload's venv (sqlite3, psycopg).
"""

# mypy: disable-error-code="import-not-found,import-untyped"
# (redis-py lives in the peers' venv: mypy sees it as Any)

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.peers.adapters.base import Adapter as Base

ROW = b"%31d\n"


class Adapter(Base):
    worker_note = "-"
    batch_api = "rows in one commit"
    conn: Any = None

    def __init__(self, variant: str, url: str, workdir: Path) -> None:
        super().__init__(variant, url, workdir)
        self.fd = -1

    def versions(self) -> dict[str, str]:
        if self.variant == "sqlite":
            return {"SQLite": sqlite3.sqlite_version}
        if self.variant == "pg":
            import psycopg

            return {"psycopg": psycopg.__version__}
        if self.variant == "redis":
            from importlib import metadata

            return {"redis": metadata.version("redis"), "hiredis": metadata.version("hiredis")}
        return {}

    def setup(self) -> None:
        if self.variant == "sqlite":
            self.conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute("CREATE TABLE raw (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        elif self.variant == "pg":
            import psycopg

            self.conn = psycopg.connect(self.url, autocommit=True)
            self.conn.execute(
                "CREATE TABLE raw (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v bigint)"
            )
        elif self.variant == "redis":
            import redis

            self.conn = redis.Redis.from_url(self.url)
        else:
            path = self.workdir / "raw.bin"
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def attach(self) -> None:
        if self.variant != "pg":
            raise NotImplementedError
        import psycopg

        self.conn = psycopg.connect(self.url, autocommit=True)

    def teardown(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.fd >= 0:
            os.close(self.fd)

    def enqueue_one(self, seq: int) -> None:
        if self.variant == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("INSERT INTO raw (v) VALUES (?)", (seq,))
            self.conn.execute("COMMIT")
        elif self.variant == "pg":
            self.conn.execute("INSERT INTO raw (v) VALUES (%s)", (seq,))
        elif self.variant == "redis":
            self.conn.lpush("raw", seq)
        else:
            os.write(self.fd, ROW % seq)
            os.fdatasync(self.fd)

    def enqueue_batch(self, seqs: Sequence[int]) -> None:
        if self.variant == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("INSERT INTO raw (v) VALUES (?)", [(s,) for s in seqs])
            self.conn.execute("COMMIT")
        elif self.variant == "pg":
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.executemany("INSERT INTO raw (v) VALUES (%s)", [(s,) for s in seqs])
        elif self.variant == "redis":
            self.conn.lpush("raw", *seqs)
        else:
            os.write(self.fd, b"".join(ROW % s for s in seqs))
            os.fdatasync(self.fd)

    def queued(self) -> int | None:
        if self.variant == "sqlite":
            return int(self.conn.execute("SELECT count(*) FROM raw").fetchone()[0])
        if self.variant == "pg":
            return int(self.conn.execute("SELECT count(*) FROM raw").fetchone()[0])
        if self.variant == "redis":
            return int(self.conn.llen("raw"))
        return os.fstat(self.fd).st_size // len(ROW % 0)
