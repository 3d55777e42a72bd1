"""RQ on Redis; variant `simple` (SimpleWorker: jobs run in the worker process) or `fork`
(the default Worker: a fork per job).

Worker: `rq worker-pool -n 2 -w rq.worker.SimpleWorker|rq.worker.Worker` (a pool process
and 2 worker processes).
"""

# mypy: disable-error-code="import-not-found,import-untyped"
# (rq and redis live in the peers' venv, not in offload's:
# mypy sees their imports as Any)

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from redis import Redis
from rq import Queue

from benchmarks.peers import marks
from benchmarks.peers.adapters.base import Adapter as Base
from benchmarks.peers.adapters.base import python

connection = Redis.from_url(os.environ["PEERS_URL"])
queue = Queue("default", connection=connection)


def mark(seq: int) -> None:
    marks.record(seq)


CLASSES = {"simple": "rq.worker.SimpleWorker", "fork": "rq.worker.Worker"}


class Adapter(Base):
    batch_api = "Queue.enqueue_many (one Redis pipeline per batch)"
    packages = ("rq", "redis")

    def __init__(self, variant: str, url: str, workdir: Path) -> None:
        super().__init__(variant, url, workdir)
        kind = "no fork" if variant == "simple" else "a fork per job"
        self.worker_note = f"rq worker-pool -n 2 -w {CLASSES[variant]} (pool + 2 workers, {kind})"

    def enqueue_one(self, seq: int) -> None:
        queue.enqueue(mark, seq)

    def enqueue_batch(self, seqs: Sequence[int]) -> None:
        queue.enqueue_many([Queue.prepare_data(mark, (seq,)) for seq in seqs])

    def worker_commands(self, n_processes: int) -> list[list[str]]:
        return [
            python(
                "-m", "rq.cli", "worker-pool", "-n", str(n_processes),
                "-w", CLASSES[self.variant], "--url", self.url, "-l", "WARNING", "default",
            )
        ]  # fmt: skip

    def queued(self) -> int:
        return int(queue.count)
