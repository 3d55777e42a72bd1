"""Dramatiq with the Redis broker and its default middleware.

Worker: `dramatiq benchmarks.peers.adapters.dramatiq --processes 2` (its defaults: a parent
and 2 worker processes with 8 worker threads each; the Redis consumer prefetches per thread,
and with `--threads 1` it drains about 10x slower, so the defaults are the fair setting).
"""

# mypy: disable-error-code="import-not-found,import-untyped"
# (dramatiq and redis live in the peers' venv, not in offload's:
# mypy sees their imports as Any)

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from redis import Redis

from benchmarks.peers import marks
from benchmarks.peers.adapters.base import Adapter as Base
from benchmarks.peers.adapters.base import python

broker = RedisBroker(url=os.environ["PEERS_URL"])
dramatiq.set_broker(broker)


def _mark(seq: int) -> None:
    marks.record(seq)


mark = dramatiq.actor(_mark, actor_name="mark", queue_name="default")


class Adapter(Base):
    worker_note = "dramatiq --processes 2 (parent + 2 worker processes, default 8 threads each)"
    packages = ("dramatiq", "redis")

    def enqueue_one(self, seq: int) -> None:
        mark.send(seq)

    def worker_commands(self, n_processes: int) -> list[list[str]]:
        return [
            python(
                "-m", "dramatiq", "benchmarks.peers.adapters.dramatiq",
                "--processes", str(n_processes), "--threads", "8",
            )
        ]  # fmt: skip

    def queued(self) -> int:
        return int(Redis.from_url(self.url).llen("dramatiq:default"))
