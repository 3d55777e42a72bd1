"""Bodies of the producer processes of the back-pressure race (importable, for "spawn").

Each producer opens its own App, waits on a shared barrier, then enqueues into the bounded
queue for `race` seconds: nine single jobs, then a batch, over and over. It
reports how many jobs it was told were stored, every refusal's retry_after, and any other
error; the parent test asserts on the reports.
"""

from __future__ import annotations

import json
import time
import traceback
from multiprocessing.synchronize import Barrier
from pathlib import Path

import offload

#: Jobs per batch (every tenth call): a batch that would cross the bound must store nothing.
BATCH = 25


def producer(url: str, queue: str, out: str, start: Barrier, race: float) -> None:
    """Enqueue `sleep` jobs (tests.apps.basic's task) into `queue` for `race` seconds."""
    stored = calls = batches_refused = 0
    waits: list[float] = []
    errors: list[str] = []
    app = offload.App(url)
    try:

        @app.task(name="sleep", queue=queue)
        def sleep(seconds: float, tag: str = "") -> str:
            return tag

        app.backend.now()  # connected before the start line
        start.wait(120)
        until = time.monotonic() + race
        while time.monotonic() < until:
            calls += 1
            try:
                if calls % 10:
                    sleep.enqueue(0.005)
                    stored += 1
                else:
                    stored += len(sleep.enqueue_many([(0.005,)] * BATCH))
            except offload.QueueFull as full:
                waits.append(full.retry_after)
                batches_refused += calls % 10 == 0
    except BaseException as exc:
        errors.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
    finally:
        app.close()
    report = {
        "stored": stored,
        "calls": calls,
        "waits": waits,
        "batches_refused": batches_refused,
        "errors": errors,
    }
    Path(out).write_text(json.dumps(report))
