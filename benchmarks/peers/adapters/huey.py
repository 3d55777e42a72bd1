"""Huey with SQLite storage (variant `sqlite`: SqliteHuey, its defaults: WAL, SQLite's
default synchronous) or Redis storage (variant `redis`: RedisHuey, blocking pop).

Worker: `huey_consumer benchmarks.peers.adapters.huey.huey -w 2 -k process` (a consumer
process, a scheduler thread, 2 worker processes). On SQLite the consumer polls: 0.1 s
after a job, backing off x1.15 to at most 10 s while idle (its defaults).
"""

# mypy: disable-error-code="import-not-found,import-untyped"
# (huey lives in the peers' venv, not in offload's:
# mypy sees their imports as Any)

from __future__ import annotations

import os

from huey import RedisHuey, SqliteHuey

from benchmarks.peers import marks
from benchmarks.peers.adapters.base import Adapter as Base
from benchmarks.peers.adapters.base import python

URL = os.environ["PEERS_URL"]
if URL.startswith("sqlite:///"):
    huey = SqliteHuey("peers", filename=URL.removeprefix("sqlite:///"))
else:
    huey = RedisHuey("peers", url=URL)


def _mark(seq: int) -> None:
    marks.record(seq)


mark = huey.task(name="mark")(_mark)


class Adapter(Base):
    worker_note = "huey_consumer -w 2 -k process (consumer + 2 worker processes)"
    packages = ("huey", "redis")

    def enqueue_one(self, seq: int) -> None:
        mark(seq)

    def worker_commands(self, n_processes: int) -> list[list[str]]:
        return [
            python(
                "-m", "huey.bin.huey_consumer", "benchmarks.peers.adapters.huey.huey",
                "-w", str(n_processes), "-k", "process", "-q",
            )
        ]  # fmt: skip

    def queued(self) -> int:
        return int(huey.pending_count())

    def settings(self) -> dict[str, str]:
        if self.variant != "sqlite":
            return {"storage": "RedisStorage(blocking=True)"}
        conn = huey.storage.conn
        sync = int(conn.execute("PRAGMA synchronous").fetchone()[0])
        journal = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return {"journal_mode": journal, "synchronous": names.get(sync, "?")}
