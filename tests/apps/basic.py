"""Tasks for worker-process tests; the database URL comes from $OFFLOAD_URL."""

from __future__ import annotations

import os
import time

import offload

app = offload.App(os.environ.get("OFFLOAD_URL"))
LEDGER = os.environ.get("OFFLOAD_TEST_LEDGER")


def _record(tag: str) -> None:
    """Append one line to the O_APPEND ledger (atomic for short writes)."""
    if LEDGER:
        fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{tag} {os.getpid()}\n".encode())
        finally:
            os.close(fd)


@app.task(name="add")
def add(a: int, b: int) -> int:
    return a + b


@app.task(name="noop")
def noop() -> None:
    return None


@app.task(name="sleep")
def sleep(seconds: float, tag: str = "") -> str:
    if tag:
        _record(f"start {tag}")
    time.sleep(seconds)
    if tag:
        _record(f"end {tag}")
    return tag


@app.task(name="fail", retry=offload.RetryPolicy(max_attempts=3, base=0.05, max_delay=0.2))
def fail(message: str = "boom") -> None:
    raise ValueError(message)


@app.task(name="bad_result")
def bad_result() -> object:
    return {1, 2}


@app.task(name="whoami")
def whoami(seconds: float) -> list[int]:
    """Sleep, then report the pid of the process that ran it."""
    time.sleep(seconds)
    return [os.getpid()]
