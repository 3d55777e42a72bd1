"""Tasks for worker-process tests; the database URL comes from $OFFLOAD_URL."""

from __future__ import annotations

import os
import threading
import time

import offload

app = offload.App(os.environ.get("OFFLOAD_URL"))
LEDGER = os.environ.get("OFFLOAD_TEST_LEDGER")
QUICK_TWICE = offload.RetryPolicy(max_attempts=2, base=0.05, max_delay=0.1)


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


@app.task(name="nap", timeout=1.0, max_attempts=1)
def nap(seconds: float) -> None:
    """Sleeps past its 1 s timeout."""
    time.sleep(seconds)


@app.task(name="blocking_c_call", timeout=1.0, max_attempts=1)
def blocking_c_call() -> None:
    """Blocks inside C (select with no descriptors), where no Python signal lands."""
    import select

    select.select([], [], [], 60)


@app.task(name="spin", cpu_seconds=1, max_attempts=1)
def spin(seconds: float) -> int:
    """Burns CPU past its 1 CPU-second budget."""
    end, count = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        count += 1
    return count


@app.task(name="hog", memory_mb=100, retry=QUICK_TWICE)
def hog(mb: int) -> int:
    """Allocates past its 100 MiB budget."""
    block = bytearray(mb * 1024 * 1024)
    return len(block)


@app.task(name="exit_now", retry=QUICK_TWICE)
def exit_now() -> None:
    os._exit(3)


@app.task(name="kill_self", retry=QUICK_TWICE)
def kill_self() -> None:
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


@app.task(name="segfault", retry=QUICK_TWICE)
def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


@app.task(name="report_progress")
def report_progress() -> str:
    job = offload.current_job()
    job.progress(0.5, "halfway")
    time.sleep(1.0)
    return f"{job.id}:{job.attempt}:{job.queue}"


@app.task(name="cancel_itself")
def cancel_itself(later: float = 0.0) -> bool:
    """Whether its job was asked to stop (looking again after `2 * later` seconds); then it
    sets its own cancel event, at once or from a timer `later` seconds after it returned,
    which the next job of the same child must not see."""
    job = offload.current_job()
    cancelled = job.cancelled
    if later:
        time.sleep(2 * later)
        cancelled = cancelled or job.cancelled
        threading.Timer(later, job.cancel_event.set).start()
    else:
        job.cancel_event.set()
    return cancelled


@app.task(name="polite_sleep", executor="thread")
def polite_sleep(seconds: float) -> str:
    """Sleeps in short steps, stopping when its job is cancelled."""
    job = offload.current_job()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        job.raise_if_cancelled()
        time.sleep(0.05)
    return "slept"


@app.task(name="async_sleep")
async def async_sleep(seconds: float) -> float:
    import asyncio

    await asyncio.sleep(seconds)
    return seconds


@app.task(name="echo")
def echo(payload: str) -> str:
    return payload


_LEAKED: list[bytearray] = []


@app.task(name="leak")
def leak(mb: int) -> int:
    """Keeps `mb` MiB alive in the child after it returns, as a leaky library would."""
    _LEAKED.append(bytearray(mb * 1024 * 1024))
    return os.getpid()


@app.task(name="type_error", retry=QUICK_TWICE)
def type_error(value: int) -> int:
    """Raises a TypeError in its body (its arguments fit): an ordinary failure, retried."""
    return value + "1"  # type: ignore[operator]


# -- workflows -------------------------------------------------------------------------


@app.task(name="collect")
def collect(values: list[object]) -> list[object]:
    """A fan-in callback: records that it ran, returns what it was given."""
    _record(f"callback {len(values)}")
    return values


@app.task(name="words")
def words(line: str) -> dict[str, int]:
    """A map step: how often each word occurs in one line."""
    counts: dict[str, int] = {}
    for word in line.split():
        counts[word] = counts.get(word, 0) + 1
    return counts


def _rss() -> int:
    """This process's resident set size in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@app.task(name="word_total")
def word_total(parts: object) -> dict[str, object]:
    """A reducer: merges word counts from a stream, sampling how much its RSS grew."""
    assert not isinstance(parts, list), "a reducer gets a stream, not a list"
    start = peak = _rss()
    totals: dict[str, int] = {}
    items = 0
    for part in parts:  # type: ignore[attr-defined]
        for word, n in part.items():
            totals[word] = totals.get(word, 0) + n
        items += 1
        if items % 500 == 0:
            peak = max(peak, _rss())
    return {"counts": totals, "items": items, "growth": max(peak, _rss()) - start}


@app.task(name="parents_seen")
def parents_seen() -> dict[str, object]:
    """What the running job learns of its parents (in a job child, through the pipe)."""
    job = offload.current_job()
    return {"results": job.parent_results(), "states": [str(p.state) for p in job.parents()]}
