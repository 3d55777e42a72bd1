"""The floor of enqueue->start latency on this machine: the least a durable queue with a
separate worker process and a separate job process can do, with no queue library at all.

Variants (each on the fresh storage the systems get; latency workload only):
* `sqlite`: the producer commits one row (WAL, synchronous=FULL: one fsync) and sends a
  datagram to the consumer; the consumer wakes, claims the row with one
  `UPDATE ... RETURNING` (synchronous=NORMAL) and writes it down a pipe to its job process,
  which records the start.
* `pg`: the producer commits one row with NOTIFY in the same statement; the consumer,
  LISTENing, wakes, claims it (synchronous_commit=off) and hands it to its job process.

The path holds what offload's holds (a durable commit, a wake-up, a claim, a hand-off to a
child) and nothing else, so offload's start latency can be read against it. The consumer is
`python -m benchmarks.peers.adapters.handoff <variant> <url> <socket name>`.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import socket
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks.peers import marks
from benchmarks.peers.adapters.base import Adapter as Base
from benchmarks.peers.adapters.base import python

CLAIM = "UPDATE handoff SET state = 1 WHERE id IN ({pick}) RETURNING seq"
PICK = "SELECT id FROM handoff WHERE state = 0 ORDER BY id LIMIT 16"


class Adapter(Base):
    worker_note = "one consumer process + one job process (a pipe between them)"
    conn: Any = None

    def __init__(self, variant: str, url: str, workdir: Any) -> None:
        super().__init__(variant, url, workdir)
        self.address = "handoff-" + hashlib.sha256(url.encode()).hexdigest()[:16]
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def versions(self) -> dict[str, str]:
        if self.variant == "sqlite":
            return {"SQLite": sqlite3.sqlite_version}
        import psycopg

        return {"psycopg": psycopg.__version__}

    def setup(self) -> None:
        if self.variant == "sqlite":
            self.conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute(
                "CREATE TABLE handoff (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, "
                "state INTEGER NOT NULL DEFAULT 0)"
            )
        else:
            import psycopg

            self.conn = psycopg.connect(self.url, autocommit=True)
            self.conn.execute(
                "CREATE TABLE handoff (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                "seq bigint NOT NULL, state int NOT NULL DEFAULT 0)"
            )
        self.conn.execute("CREATE INDEX handoff_new ON handoff (id) WHERE state = 0")

    def teardown(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.sock.close()

    def enqueue_one(self, seq: int) -> None:
        if self.variant == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("INSERT INTO handoff (seq) VALUES (?)", (seq,))
            self.conn.execute("COMMIT")
            with contextlib.suppress(OSError):  # no consumer yet: it looks when it starts
                self.sock.sendto(b"\1", "\0" + self.address)
        else:
            self.conn.execute(
                "WITH i AS (INSERT INTO handoff (seq) VALUES (%s) RETURNING 1) "
                "SELECT pg_notify('handoff', '') FROM i",
                (seq,),
            )

    def enqueue_batch(self, seqs: Sequence[int]) -> None:
        raise NotImplementedError

    def worker_commands(self, n_processes: int) -> list[list[str]]:
        return [python("-m", "benchmarks.peers.adapters.handoff", self.variant, self.url,
                       self.address)]  # fmt: skip

    def settings(self) -> dict[str, str]:
        return {"claim": CLAIM.format(pick=PICK)}


def _job_process(conn: Any) -> None:
    """Record the start of every job the consumer hands over."""
    while True:
        data = conn.recv_bytes()
        for seq in data.split():
            marks.record(int(seq))


def _consume(variant: str, url: str, address: str) -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_job_process, args=(reader,))
    child.start()
    claim = CLAIM.format(pick=PICK)
    if variant == "sqlite":
        wake = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        wake.bind("\0" + address)
        db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        db.execute("PRAGMA synchronous = NORMAL")
        while True:
            db.execute("BEGIN IMMEDIATE")
            rows = db.execute(claim).fetchall()
            db.execute("COMMIT")
            if rows:
                writer.send_bytes(b" ".join(b"%d" % row[0] for row in rows))
            else:
                wake.recv(16)
    else:
        import psycopg

        listen = psycopg.connect(url, autocommit=True)
        listen.execute("LISTEN handoff")
        pg = psycopg.connect(url, autocommit=True, options="-c synchronous_commit=off")
        while True:
            rows = pg.execute(claim).fetchall()
            if rows:
                writer.send_bytes(b" ".join(b"%d" % row[0] for row in rows))
            else:
                for _ in listen.notifies(timeout=1.0, stop_after=1):
                    pass


if __name__ == "__main__":
    _consume(*sys.argv[1:4])
