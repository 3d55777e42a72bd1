"""pgqueuer on PostgreSQL (asyncio, asyncpg driver, LISTEN/NOTIFY), durable tables.

Worker: 2 processes, each `pgqueuer.run(factory)`: what `pgq run ...:factory` does, with
the same defaults (batch_size=10 jobs per dequeue, completions and heartbeats recorded in
batches). The `pgq run` command itself fails in pgqueuer 1.6.0 (its --log-level option hands
a str where an enum is expected, even by default), hence `python -m` this module.
"""

# mypy: disable-error-code="import-not-found,import-untyped"
# (pgqueuer and asyncpg live in the peers' venv, not in offload's:
# mypy sees their imports as Any)

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pgqueuer
from pgqueuer import PgQueuer
from pgqueuer.queries import Queries

from benchmarks.peers import marks
from benchmarks.peers.adapters.base import Adapter as Base
from benchmarks.peers.adapters.base import python

URL = os.environ["PEERS_URL"]


async def _mark(job: Any) -> None:
    marks.record(int(job.payload))


@contextlib.asynccontextmanager
async def factory() -> AsyncIterator[Any]:
    """What `pgq run` calls: a PgQueuer with the `mark` entrypoint."""
    connection = await asyncpg.connect(URL)
    try:
        pgq = PgQueuer.from_asyncpg_connection(connection)
        pgq.entrypoint("mark")(_mark)
        yield pgq
    finally:
        await connection.close()


class Adapter(Base):
    worker_note = "2 x `pgqueuer.run(factory)` (= `pgq run`; batch_size=10, LISTEN/NOTIFY)"
    batch_api = "Queries.enqueue with lists (one statement per batch)"
    packages = ("pgqueuer", "asyncpg")
    connection: Any = None
    queries: Any = None

    async def setup(self) -> None:
        self.connection = await asyncpg.connect(URL)
        self.queries = Queries.from_asyncpg_connection(self.connection)
        await self.queries.install()

    async def teardown(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def enqueue_one(self, seq: int) -> None:
        await self.queries.enqueue("mark", b"%d" % seq)

    async def enqueue_batch(self, seqs: Sequence[int]) -> None:
        n = len(seqs)
        await self.queries.enqueue(["mark"] * n, [b"%d" % seq for seq in seqs], [0] * n)

    def worker_commands(self, n_processes: int) -> list[list[str]]:
        cmd = python("-m", "benchmarks.peers.adapters.pgqueuer")
        return [cmd] * n_processes

    async def queued(self) -> int:
        return int(
            await self.connection.fetchval("SELECT count(*) FROM pgqueuer WHERE status = 'queued'")
        )


if __name__ == "__main__":
    asyncio.run(pgqueuer.run(factory))
