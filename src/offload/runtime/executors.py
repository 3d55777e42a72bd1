"""Executors: where a worker runs its jobs.

`ProcessExecutor` (the default) keeps one child process per slot, so a crash, a hang or a
memory blow-up costs one child, never the worker; `ThreadExecutor` runs jobs in threads of
the worker process for I/O-bound tasks. Both talk to the worker loop through descriptors it
can `select` on, so the loop never blocks on a job.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

import orjson

from offload.core.job import Job
from offload.core.task import Registry
from offload.runtime.execution import Finished, run_call
from offload.runtime.loader import load_app


class Executor(Protocol):
    """What the worker loop needs from an executor."""

    def free(self) -> int:
        """How many more jobs can start now."""
        ...

    def submit(self, job: Job) -> None:
        """Start a job in a free slot."""
        ...

    def poll(self) -> list[Finished]:
        """Jobs that ended since the last call (never blocks)."""
        ...

    def waitables(self) -> list[Any]:
        """Objects the loop waits on: ready when `poll` has something."""
        ...

    def running(self) -> list[Job]:
        """Jobs currently running."""
        ...

    def next_deadline(self) -> float | None:
        """The monotonic time at which `poll` must run to enforce a timeout."""
        ...

    def stop_all(self) -> list[Job]:
        """End every running job at once; return them (their outcome is unknown)."""
        ...

    def close(self) -> None:
        """Release processes and threads."""
        ...


def _lost(job: Job, kind: str, message: str) -> Finished:
    return Finished(job, ok=False, error={"type": kind, "message": message, "traceback": None})


def _died(job: Job, code: int | None) -> Finished:
    return _lost(job, "WorkerLost", f"the child process running it died (exit code {code})")


# -- child processes ---------------------------------------------------------------------


def _child_main(app_path: str, conn: Connection, result_limit: int | None) -> None:
    """Body of a child process: run jobs sent by the worker, one at a time, until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when children stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    registry: Registry = load_app(app_path).registry
    while True:
        try:
            job_id, task, args, kwargs = orjson.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the worker closed the pipe, or died
            return
        ok, payload, permanent = run_call(registry, task, args, kwargs, result_limit)
        try:
            conn.send_bytes(orjson.dumps([job_id, ok, payload, permanent]))
        except OSError:  # the worker is gone; its lease will rerun the job elsewhere
            return


@dataclass(slots=True)
class _Slot:
    process: BaseProcess
    conn: Connection
    job: Job | None = None
    deadline: float | None = None
    jobs_done: int = 0


@dataclass
class ProcessExecutor:
    """One child process per slot, started from a fork server that preloads the app."""

    app_path: str
    concurrency: int
    timeout_of: Callable[[Job], float | None]
    result_limit: int | None = None
    #: Replace a child after this many jobs (None: never), as max-tasks-per-child does.
    max_jobs_per_child: int | None = None
    _slots: list[_Slot] = field(default_factory=list)

    def __post_init__(self) -> None:
        module = self.app_path.partition(":")[0]
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload([module])
        self._slots = [self._spawn() for _ in range(self.concurrency)]

    def _spawn(self) -> _Slot:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_child_main,
            args=(self.app_path, child, self.result_limit),
            name="offload-child",
            daemon=True,
        )
        process.start()
        child.close()
        return _Slot(process, parent)

    def _replace(self, index: int) -> None:
        old = self._slots[index]
        if old.process.is_alive():
            old.process.kill()
        old.process.join(5)
        old.conn.close()
        self._slots[index] = self._spawn()

    def free(self) -> int:
        return sum(1 for slot in self._slots if slot.job is None)

    def submit(self, job: Job) -> None:
        message = orjson.dumps([job.id, job.task, job.args, job.kwargs])
        for index, idle in enumerate(self._slots):
            if idle.job is None:
                slot = idle
                try:
                    slot.conn.send_bytes(message)
                except OSError:  # the idle child died: replace it and retry once
                    self._replace(index)
                    slot = self._slots[index]
                    slot.conn.send_bytes(message)
                slot.job = job
                limit = self.timeout_of(job)
                slot.deadline = None if limit is None else time.monotonic() + limit
                return
        raise RuntimeError("submit called with no free slot")

    def poll(self) -> list[Finished]:
        done: list[Finished] = []
        now = time.monotonic()
        for index, slot in enumerate(self._slots):
            job = slot.job
            if job is None:
                if not slot.process.is_alive():
                    self._replace(index)
                continue
            if slot.conn.poll():
                try:
                    _, ok, payload, permanent = orjson.loads(slot.conn.recv_bytes())
                except (EOFError, OSError):
                    slot.process.join(1)
                    code = slot.process.exitcode
                    done.append(
                        _lost(
                            job,
                            "WorkerLost",
                            f"the child process running it died (exit code {code})",
                        )
                    )
                    slot.job = None
                    self._replace(index)
                    continue
                if ok:
                    done.append(Finished(job, ok=True, result=payload))
                else:
                    done.append(Finished(job, ok=False, error=payload, permanent=permanent))
                slot.job, slot.deadline = None, None
                slot.jobs_done += 1
                if self.max_jobs_per_child and slot.jobs_done >= self.max_jobs_per_child:
                    self._replace(index)
            elif slot.deadline is not None and now >= slot.deadline:
                limit = self.timeout_of(job)
                done.append(_lost(job, "JobTimeout", f"exceeded its timeout of {limit:g}s"))
                slot.job = None
                self._replace(index)
            elif not slot.process.is_alive():
                code = slot.process.exitcode
                done.append(
                    _lost(
                        job, "WorkerLost", f"the child process running it died (exit code {code})"
                    )
                )
                slot.job = None
                self._replace(index)
        return done

    def waitables(self) -> list[Any]:
        ready: list[Any] = []
        for slot in self._slots:
            if slot.job is not None:
                ready.append(slot.conn)
                ready.append(slot.process.sentinel)
        return ready

    def running(self) -> list[Job]:
        return [slot.job for slot in self._slots if slot.job is not None]

    def next_deadline(self) -> float | None:
        deadlines = [slot.deadline for slot in self._slots if slot.deadline is not None]
        return min(deadlines) if deadlines else None

    def stop_all(self) -> list[Job]:
        stopped = self.running()
        for index, slot in enumerate(self._slots):
            if slot.job is not None:
                slot.job = None
                self._replace(index)
        return stopped

    def close(self) -> None:
        for slot in self._slots:
            slot.conn.close()  # children see EOF and exit
        deadline = time.monotonic() + 2
        for slot in self._slots:
            slot.process.join(max(deadline - time.monotonic(), 0))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(1)
        self._slots = []


# -- threads -----------------------------------------------------------------------------


class ThreadExecutor:
    """Jobs in a thread pool of the worker process; for I/O-bound tasks."""

    def __init__(
        self, registry: Registry, concurrency: int, result_limit: int | None = None
    ) -> None:
        self.registry = registry
        self.concurrency = concurrency
        self.result_limit = result_limit
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="offload-job")
        self._done: queue.SimpleQueue[Finished] = queue.SimpleQueue()
        self._running: dict[int, Job] = {}
        self._lock = threading.Lock()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)

    def free(self) -> int:
        return self.concurrency - len(self._running)

    def submit(self, job: Job) -> None:
        with self._lock:
            self._running[job.id] = job
        self._pool.submit(self._run, job)

    def _run(self, job: Job) -> None:
        ok, payload, permanent = run_call(
            self.registry, job.task, job.args, job.kwargs, self.result_limit
        )
        if ok:
            assert isinstance(payload, str)
            finished = Finished(job, ok=True, result=payload)
        else:
            assert isinstance(payload, dict)
            finished = Finished(job, ok=False, error=payload, permanent=permanent)
        self._done.put(finished)
        os.write(self._write_fd, b"\1")

    def poll(self) -> list[Finished]:
        with contextlib.suppress(BlockingIOError):
            os.read(self._read_fd, 65536)
        done: list[Finished] = []
        while True:
            try:
                finished = self._done.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                self._running.pop(finished.job.id, None)
            done.append(finished)
        return done

    def waitables(self) -> list[Any]:
        return [self._read_fd]

    def running(self) -> list[Job]:
        with self._lock:
            return list(self._running.values())

    def next_deadline(self) -> float | None:
        return None

    def stop_all(self) -> list[Job]:
        # Threads cannot be killed: their jobs are abandoned; leases make them run again.
        with self._lock:
            stopped = list(self._running.values())
            self._running.clear()
        return stopped

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        os.close(self._read_fd)
        os.close(self._write_fd)
