"""The benchmark's offload app: one no-op task on the database named by $OFFLOAD_URL.

It is a module of its own (`benchmarks.bench_app:app`) so that the process executor's fork
server and job children can import it. Set OFFLOAD_URL before importing it; throughput.py
re-imports it (importlib.reload) for every fresh database.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

import offload
from benchmarks.wordcount import count_words, merge_counts

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


@app.task(name="stamp")
def stamp() -> float:
    """Return the wall-clock time the task began (benchmarks/latency_trace.py)."""
    return time.time()


@app.task(name="limited_noop", concurrency=1_000_000, rate_limit="1000000/s")
def limited_noop() -> None:
    """A no-op under a concurrency and a rate limit too high to bind: what counting costs."""
    return None


@app.task(name="anoop")
async def anoop() -> None:
    """Do nothing on the worker's event loop (the asyncio executor's figure)."""
    return None


@app.task(name="words")
def words(line: str) -> dict[str, int]:
    """A map step of the word count (benchmarks/workflows.py): one line's word counts."""
    return count_words(line)


@app.task(name="word_merge")
def word_merge(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    """The word count's reducer: merges the chunks' counts as they stream in."""
    return merge_counts(parts)


@app.task(name="word_combine")
def word_combine(parts: list[dict[str, int]]) -> dict[str, int]:
    """The word count's combiner: one chunk's counts merged where the chunk ran."""
    return merge_counts(parts)
