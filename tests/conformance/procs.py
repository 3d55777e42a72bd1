"""Bodies of the processes the concurrency tests start (importable, so "spawn" can run them).

Each process opens its own backend from the URL, waits on a shared barrier so that all of
them really run at once, does its work, and writes a JSON report to `out`: what it claimed
or enqueued, every error that reached it, and (when traced) how its SQLite transactions
began. The parent test reads the reports; nothing is asserted in the children.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import offload
from offload.backends import open_backend
from offload.backends.base import Backend
from offload.backends.params import ClaimParams, FinishParams, Outcome
from offload.core.states import JobState

_WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)
_LEADING_COMMENTS = re.compile(r"^(\s*(--[^\n]*\n|/\*.*?\*/))*\s*", re.DOTALL)


class TxTrace:
    """Checks, statement by statement, that every write runs inside `BEGIN IMMEDIATE`."""

    def __init__(self) -> None:
        self.begin_immediate = 0
        self.writes = 0
        self.violations: list[str] = []
        self._in_tx = False

    def __call__(self, sql: str) -> None:
        text = _LEADING_COMMENTS.sub("", sql, count=1)
        words = text.split(None, 2)
        head = words[0].upper() if words else ""
        if head == "BEGIN":
            if len(words) < 2 or words[1].upper().rstrip(";") != "IMMEDIATE":
                self._violation("a transaction not opened with BEGIN IMMEDIATE", sql)
            else:
                self.begin_immediate += 1
            self._in_tx = True
        elif head in ("COMMIT", "END", "ROLLBACK"):
            self._in_tx = False
        elif head != "PRAGMA" and _WRITE.search(text.split("RETURNING")[0]):
            self.writes += 1
            if not self._in_tx:
                self._violation("a write outside BEGIN IMMEDIATE", sql)

    def _violation(self, what: str, sql: str) -> None:
        if len(self.violations) < 20:
            self.violations.append(f"{what}: {sql[:200]!r}")

    def report(self) -> dict[str, Any]:
        return {
            "begin_immediate": self.begin_immediate,
            "writes": self.writes,
            "violations": self.violations,
        }


def trace_sqlite(backend: Backend) -> TxTrace | None:
    """Install a TxTrace on a SQLite backend's connection (None for other backends)."""
    if backend.name != "sqlite":
        return None
    trace = TxTrace()
    backend._conn().set_trace_callback(trace)  # type: ignore[attr-defined]
    return trace


def _write(out: str, report: dict[str, Any]) -> None:
    Path(out).write_text(json.dumps(report))


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"


def claimer(
    url: str,
    name: str,
    out: str,
    start: Barrier,
    batch: int,
    queue: str = "default",
    done: Event | None = None,
    trace: bool = False,
) -> None:
    """Claim and finish jobs until none is left (and, given `done`, until producers end)."""
    claimed: list[list[Any]] = []
    errors: list[str] = []
    tracer = None
    backend = open_backend(url)
    try:
        backend.now()  # connect before the start line
        tracer = trace_sqlite(backend) if trace else None
        start.wait(60)
        idle = 0
        while True:
            jobs = backend.claims.claim(ClaimParams(name, queue, batch, 60.0))
            if not jobs:
                if done is None:
                    break
                if done.is_set():
                    idle += 1
                    if idle >= 2:  # two empty claims after the producers ended: drained
                        break
                time.sleep(0.002)
                continue
            idle = 0
            claimed.extend([job.id, job.attempt, job.worker] for job in jobs)
            outcomes = [
                Outcome(job.id, job.attempt, JobState.SUCCEEDED, result=str(job.id)) for job in jobs
            ]
            lost = backend.claims.finish(FinishParams(name, outcomes))
            if lost:
                errors.append(f"job_finish reported lost leases {lost}")
    except BaseException as exc:
        errors.append(_error(exc))
    finally:
        backend.close()
    _write(
        out,
        {"claimed": claimed, "errors": errors, "trace": tracer.report() if tracer else None},
    )


def producer(
    url: str,
    index: int,
    count: int,
    out: str,
    start: Barrier,
    pattern: Sequence[int],
    trace: bool = False,
) -> None:
    """Enqueue `count` jobs through the App, as singles and small batches per `pattern`."""
    ids: list[int] = []
    errors: list[str] = []
    calls = 0
    tracer = None
    app = offload.App(url)
    try:

        @app.task(name="work")
        def work(producer: int, seq: int) -> None:
            return None

        app.backend.now()
        tracer = trace_sqlite(app.backend) if trace else None
        start.wait(60)
        seq = 0
        turn = 0
        while seq < count:
            size = min(pattern[turn % len(pattern)], count - seq)
            turn += 1
            if size == 1:
                ids.append(work.enqueue(index, seq).id)
            else:
                handles = work.enqueue_many([(index, seq + i) for i in range(size)])
                ids.extend(h.id for h in handles)
            calls += 1
            seq += size
    except BaseException as exc:
        errors.append(_error(exc))
    finally:
        app.close()
    _write(
        out,
        {
            "ids": ids,
            "calls": calls,
            "errors": errors,
            "trace": tracer.report() if tracer else None,
        },
    )


def start_all(targets: Sequence[tuple[Callable[..., None], tuple[Any, ...]]]) -> list[BaseProcess]:
    """Start one process per (function, args), each a fresh interpreter ("spawn")."""
    ctx = multiprocessing.get_context("spawn")
    processes: list[BaseProcess] = [
        ctx.Process(target=fn, args=args, daemon=True) for fn, args in targets
    ]
    for process in processes:
        process.start()
    return processes


def join_all(processes: Sequence[BaseProcess], timeout: float) -> list[int | None]:
    """Wait for every process (killing those still running at the deadline); exit codes."""
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.1))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(5)
    return [process.exitcode for process in processes]


def read_reports(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The JSON reports the processes wrote (a missing one means the process died)."""
    reports = []
    for path in paths:
        assert path.exists(), f"{path.name}: the process wrote no report (it crashed or hung)"
        reports.append(json.loads(path.read_text()))
    return reports
