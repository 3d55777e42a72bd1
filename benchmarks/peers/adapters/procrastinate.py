"""procrastinate on PostgreSQL (asyncio, psycopg 3 connector, LISTEN/NOTIFY).

Worker: 2 processes of `procrastinate --app benchmarks.peers.adapters.procrastinate.app
worker --concurrency 1` (its default concurrency; each process listens for NOTIFY and polls
every 5 s as a fallback).
"""

# mypy: disable-error-code="import-not-found,import-untyped"
# (procrastinate lives in the peers' venv, not in offload's:
# mypy sees their imports as Any)

from __future__ import annotations

import os
from collections.abc import Sequence

import procrastinate
import psycopg

from benchmarks.peers import marks
from benchmarks.peers.adapters.base import Adapter as Base
from benchmarks.peers.adapters.base import python

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=os.environ["PEERS_URL"]))


async def _mark(seq: int) -> None:
    marks.record(seq)


mark = app.task(name="mark", queue="default")(_mark)


class Adapter(Base):
    worker_note = "2 x `procrastinate worker --concurrency 1` (LISTEN/NOTIFY, 5 s poll)"
    batch_api = "Task.batch_defer_async (one INSERT per batch)"
    packages = ("procrastinate", "psycopg", "psycopg-pool")

    async def setup(self) -> None:
        await app.open_async()
        await app.schema_manager.apply_schema_async()

    async def teardown(self) -> None:
        await app.close_async()

    async def enqueue_one(self, seq: int) -> None:
        await mark.defer_async(seq=seq)

    async def enqueue_batch(self, seqs: Sequence[int]) -> None:
        await mark.batch_defer_async(*({"seq": seq} for seq in seqs))

    def worker_commands(self, n_processes: int) -> list[list[str]]:
        cmd = python(
            "-m", "procrastinate", "--app", "benchmarks.peers.adapters.procrastinate.app",
            "worker", "--concurrency", "1", "--queues", "default",
        )  # fmt: skip
        return [cmd] * n_processes

    def queued(self) -> int:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'"
            ).fetchone()
        return int(row[0]) if row else 0
