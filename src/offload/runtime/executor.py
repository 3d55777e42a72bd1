"""The executor contract: what the worker loop asks of an executor, and the events it gets back.

`ProcessExecutor` (offload.runtime.processes.executor, the default) keeps one child process
per slot, so a crash, a hang or a memory blow-up costs one child, never the worker, and CPU and
memory limits can be enforced; `ThreadExecutor` and `AsyncExecutor` (offload.runtime.inprocess) run
jobs in threads of the worker or, for `async def` tasks, hundreds at once on one event loop.
Each talks to the worker loop through descriptors it can `select` on, so the loop never
blocks on a job. How a job is run and its end turned into an event: offload.runtime.running.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from offload.core.job import Job


@dataclass(slots=True)
class Finished:
    """How one run ended, before the worker decides on retry or dead."""

    job: Job
    ok: bool
    #: JSON text of the result when ok.
    result: str | None = None
    #: {"type", "message", "traceback"} when not ok.
    error: dict[str, Any] | None = None
    #: True when retrying cannot help (unknown task, arguments the function cannot take):
    #: the job goes dead at once.
    permanent: bool = False
    #: True when the run stopped because its job was cancelled.
    cancelled: bool = False
    #: Seconds the run took, measured where it ran (None: not measured, e.g. stopped).
    duration: float | None = None


#: Jobs a slot holds at least (one running, the rest queued) while jobs are short: the
#: worker loop then collects many ends per turn and records them in one commit.
PIPELINE_DEPTH = 32
#: Runs shorter than this on average (seconds) count as short.
SHORT_RUN = 0.002
#: Shorter runs still: a slot holds as many as take this long (seconds; what
#: PIPELINE_DEPTH runs just under SHORT_RUN take), up to MAX_DEPTH. Tiny jobs then keep a
#: child busy through the loop's claim and finish, and share fewer, larger statements.
QUEUED_WORK = PIPELINE_DEPTH * SHORT_RUN
MAX_DEPTH = 128


@dataclass(slots=True)
class Pace:
    """How long runs take, as a moving average: it decides how many jobs a slot holds, so
    that short jobs queue in the executor (about QUEUED_WORK of them) while long ones never
    wait behind each other. A long run among tiny ones holds up to MAX_DEPTH - 1 jobs
    queued behind it in its slot until it ends: a task whose runs may take long among tiny
    ones is best given a queue of its own."""

    #: Seconds; runs are taken as long until some have ended.
    run_time: float = 1.0

    def record(self, seconds: float) -> None:
        self.run_time = 0.8 * self.run_time + 0.2 * seconds

    def depth(self) -> int:
        if self.run_time >= SHORT_RUN:
            return 1
        if self.run_time * MAX_DEPTH <= QUEUED_WORK:
            return MAX_DEPTH
        return max(int(QUEUED_WORK / self.run_time), PIPELINE_DEPTH)


@dataclass(slots=True)
class Progress:
    """A running job's report of how far it is."""

    job: Job
    fraction: float
    message: str | None


Event = Finished | Progress


class Executor(Protocol):
    """What the worker loop needs from an executor."""

    def free(self) -> int:
        """How many more jobs can start now."""
        ...

    def capacity(self) -> int:
        """How many jobs it holds when full: slots times the jobs each may queue."""
        ...

    def submit(self, jobs: list[Job]) -> None:
        """Start these jobs, in order, in free slots (no more than `free()` of them)."""
        ...

    def poll(self) -> list[Event]:
        """Jobs that ended, and progress reports, since the last call (never blocks)."""
        ...

    def waitables(self) -> list[int]:
        """Descriptors the loop waits on: readable when `poll` may have something."""
        ...

    def running(self) -> list[Job]:
        """Jobs currently running."""
        ...

    def cancel(self, job_id: int) -> None:
        """Stop a running job because it was cancelled (its Finished says so)."""
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


class SelfPipe:
    """A self-pipe: threads write a byte to wake the worker loop.

    A wake may race the loop's end (`Worker.stop` from another thread as the loop closes
    the pipe): once closed, a wake does nothing, and the lock keeps it from writing to a
    descriptor number the process may already have reused for another file. Reentrant:
    a signal handler wakes the loop from the thread that may hold it.
    """

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)  # a full pipe has woken its reader already
        self._lock = threading.RLock()
        self._closed = False

    def wake(self) -> None:
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(BlockingIOError):
                os.write(self.write_fd, b"\1")

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.read_fd, 65536)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            os.close(self.read_fd)
            os.close(self.write_fd)
