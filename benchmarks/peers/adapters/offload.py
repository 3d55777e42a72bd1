"""offload, from this working tree, on SQLite (variant `sqlite`) or PostgreSQL (`pg`).

Runs in offload's own venv. The worker is offload's CLI, as a user starts it:
`offload --app benchmarks.peers.adapters.offload:app worker -c 2 --executor process`
(a worker process, a fork server and 2 job processes). A variant `<backend>:<executor>`
(`sqlite:thread`, `pg:async`) runs the worker with that executor instead.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import offload
from benchmarks.peers import marks
from benchmarks.peers.adapters.base import Adapter as Base
from benchmarks.peers.adapters.base import python

app = offload.App(os.environ["PEERS_URL"])
#: The executor of a variant that names none (experiments; the table's rows name theirs).
EXECUTOR = os.environ.get("PEERS_OFFLOAD_EXECUTOR", "process")
#: How the worker runs, by executor (the table's notes).
WORKER_NOTES = {
    "process": "worker + fork server + 2 job processes",
    "thread": "one worker process, 2 job threads",
    "async": "one worker process, 2 job coroutines on its event loop",
}


@app.task(name="mark")
def mark(seq: int) -> None:
    marks.record(seq)


class Adapter(Base):
    batch_api = "Task.enqueue_many (one statement, one commit)"
    packages = ("offload", "psycopg", "orjson")

    def __init__(self, variant: str, url: str, workdir: Path) -> None:
        super().__init__(variant, url, workdir)
        self.executor = variant.partition(":")[2] or EXECUTOR
        self.worker_note = (
            f"offload worker -c 2 --executor {self.executor} "
            f"({WORKER_NOTES.get(self.executor, '?')})"
        )

    def setup(self) -> None:
        app.migrate()

    def attach(self) -> None:
        app.queue_counts()  # opens this process's connection before the timed enqueues

    def teardown(self) -> None:
        app.close()

    def enqueue_one(self, seq: int) -> None:
        mark.enqueue(seq)

    async def enqueue_async(self, seq: int) -> None:
        await mark.enqueue_async(seq)

    def enqueue_batch(self, seqs: Sequence[int]) -> None:
        mark.enqueue_many([(seq,) for seq in seqs])

    def worker_commands(self, n_processes: int) -> list[list[str]]:
        return [
            python(
                "-m", "offload.cli", "--app", "benchmarks.peers.adapters.offload:app",
                "worker", "-c", str(n_processes), "--executor", self.executor,
                "--log-level", "warning",
            )
        ]  # fmt: skip

    def queued(self) -> int:
        return app.queue_counts().get("default", {}).get("available", 0)

    def settings(self) -> dict[str, str]:
        found: dict[str, str] = {
            "offload from": os.path.dirname(offload.__file__),
            "source": source_hash(),
        }
        backend: Any = app.backend
        if app.backend.name == "sqlite":
            conn = backend._conn()
            found["journal_mode"] = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
            sync = int(conn.execute("PRAGMA synchronous").fetchone()[0])
            found["synchronous"] = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(sync, "?")
        return found


def source_hash() -> str:
    """A short hash of offload's source files as imported: which code a run measured (the
    working tree changes while others work on it)."""
    root = Path(offload.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".sql"):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]
