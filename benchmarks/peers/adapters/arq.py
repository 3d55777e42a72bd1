"""arq on Redis (asyncio), with its default worker settings.

Worker: 2 processes of `arq benchmarks.peers.adapters.arq.WorkerSettings` (arq has no
multi-process mode; each process runs up to max_jobs=10 coroutines and polls the queue
every poll_delay=0.5 s when it has nothing to do).
"""

# mypy: disable-error-code="import-not-found,import-untyped"
# (arq lives in the peers' venv, not in offload's:
# mypy sees their imports as Any)

from __future__ import annotations

import os
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from benchmarks.peers import marks
from benchmarks.peers.adapters.base import Adapter as Base
from benchmarks.peers.adapters.base import python

SETTINGS = RedisSettings.from_dsn(os.environ["PEERS_URL"])


async def mark(ctx: dict[str, Any], seq: int) -> None:
    marks.record(seq)


class WorkerSettings:
    functions = (mark,)
    redis_settings = SETTINGS


class Adapter(Base):
    worker_note = "2 x `arq WorkerSettings` (defaults: max_jobs=10 each, poll_delay=0.5 s)"
    packages = ("arq", "redis")
    pool: Any = None

    async def setup(self) -> None:
        self.pool = await create_pool(SETTINGS)

    async def teardown(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()

    async def enqueue_one(self, seq: int) -> None:
        await self.pool.enqueue_job("mark", seq)

    def worker_commands(self, n_processes: int) -> list[list[str]]:
        cmd = python("-m", "arq", "benchmarks.peers.adapters.arq.WorkerSettings")
        return [cmd] * n_processes

    async def queued(self) -> int:
        return int(await self.pool.zcard("arq:queue"))
