"""Celery with the Redis broker (no result backend: the no-op's result is ignored).

Worker: `celery -A benchmarks.peers.adapters.celery:app worker -c 2 -P prefork
--without-gossip --without-mingle --without-heartbeat` (a parent and 2 prefork children;
default prefetch multiplier 4 and early acknowledgement).
"""

# mypy: disable-error-code="import-not-found,import-untyped"
# (celery and redis live in the peers' venv, not in offload's:
# mypy sees their imports as Any)

from __future__ import annotations

import os
from collections.abc import Sequence

from celery import Celery, group
from redis import Redis

from benchmarks.peers import marks
from benchmarks.peers.adapters.base import Adapter as Base
from benchmarks.peers.adapters.base import python

app = Celery("peers", broker=os.environ["PEERS_URL"])
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


def _mark(seq: int) -> None:
    marks.record(seq)


mark = app.task(name="mark", ignore_result=True)(_mark)


class Adapter(Base):
    worker_note = (
        "celery worker -c 2 -P prefork --without-gossip --without-mingle --without-heartbeat "
        "(parent + 2 children; prefetch 4 per child, ack on receipt)"
    )
    batch_api = "group(...).apply_async() (no real batching: one message per job)"
    packages = ("celery", "kombu", "redis")

    def enqueue_one(self, seq: int) -> None:
        mark.delay(seq)

    def enqueue_batch(self, seqs: Sequence[int]) -> None:
        group(mark.s(seq) for seq in seqs).apply_async()

    def worker_commands(self, n_processes: int) -> list[list[str]]:
        return [
            python(
                "-m", "celery", "-A", "benchmarks.peers.adapters.celery:app", "worker",
                "-c", str(n_processes), "-P", "prefork", "--without-gossip",
                "--without-mingle", "--without-heartbeat", "-l", "WARNING",
            )
        ]  # fmt: skip

    def queued(self) -> int:
        return int(Redis.from_url(self.url).llen("celery"))
