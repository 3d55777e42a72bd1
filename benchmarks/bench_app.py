"""The benchmark's offload app: one no-op task on the database named by $OFFLOAD_URL.

It is a module of its own (`benchmarks.bench_app:app`) so that the process executor's fork
server and job children can import it. Set OFFLOAD_URL before importing it; throughput.py
re-imports it (importlib.reload) for every fresh database.
"""

from __future__ import annotations

import os

import offload

APP_PATH = "benchmarks.bench_app:app"

try:
    URL = os.environ["OFFLOAD_URL"]
except KeyError:
    raise RuntimeError(
        "benchmarks.bench_app needs $OFFLOAD_URL (sqlite:////abs/path.db or postgresql://...)"
    ) from None

app = offload.App(URL)


@app.task(name="noop")
def noop() -> None:
    """Do nothing: the benchmark measures the queue, not the task."""
    return None


@app.task(name="limited_noop", concurrency=1_000_000, rate_limit="1000000/s")
def limited_noop() -> None:
    """A no-op under a concurrency and a rate limit too high to bind: what counting costs."""
    return None


@app.task(name="anoop")
async def anoop() -> None:
    """Do nothing on the worker's event loop (the asyncio executor's figure)."""
    return None
