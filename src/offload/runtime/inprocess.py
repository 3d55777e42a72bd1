"""Executors that run jobs inside the worker process: threads, and an asyncio loop."""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from offload.core import serialization
from offload.core.errors import JobCancelled
from offload.core.job import Job
from offload.core.task import Registry, TaskDef
from offload.runtime.context import JobContext, Running
from offload.runtime.executor import Event, Finished, Pace, Progress, SelfPipe
from offload.runtime.running import (
    Outcome,
    error_entry,
    failure,
    finished_from,
    limit_error,
    lookup,
    run_call,
    stopped,
)

log = logging.getLogger("offload.worker")

#: Slots whose short jobs queue behind them, at most: a wide executor (hundreds of async
#: slots) batches its ends as well as a narrow one without claiming thousands of jobs ahead.
PIPELINED_SLOTS = 8


class _InProcess:
    """What the thread and asyncio executors share: jobs run in this process and report
    to the worker loop through a queue and a self-pipe. `_running` maps a run (job id and
    attempt: a job rescued and claimed again here may still be held by its older run) to
    the job and a handle used to cancel it."""

    def __init__(self, registry: Registry, concurrency: int, result_limit: int | None) -> None:
        self.registry = registry
        self.concurrency = concurrency
        self.result_limit = result_limit
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        #: Jobs held, started or queued behind the running ones.
        self._running: dict[tuple[int, int], tuple[Job, Any]] = {}
        self._lock = threading.Lock()
        self._pipe = SelfPipe()
        #: While runs are short, each slot holds several jobs, so their ends reach the loop
        #: (and the database) many at a time rather than one per commit.
        self._pace = Pace()

    def free(self) -> int:
        return self.capacity() - len(self._running)

    def capacity(self) -> int:
        queued = (self._pace.depth() - 1) * min(self.concurrency, PIPELINED_SLOTS)
        return self.concurrency + queued

    def _held(self, job: Job, handle: Any) -> bool:
        """Whether `job` is still held under `handle` (not abandoned by `stop_all`)."""
        entry = self._running.get((job.id, job.attempt))
        return entry is not None and entry[1] is handle

    def _not_started(self, job: Job) -> None:
        """Report a queued job cancelled before its turn came."""
        self._events.put(stopped(job, "JobCancelled", "cancelled before it started", True))
        self._pipe.wake()

    def _context(self, job: Job) -> JobContext:
        def report(fraction: float, message: str | None) -> None:
            self._events.put(Progress(job, fraction, message))
            self._pipe.wake()

        return JobContext(
            job.id, job.attempt, job.queue, job.task, report, parent_outcomes=job.parent_outcomes
        )

    def _done(self, job: Job, outcome: Outcome, duration: float) -> None:
        with self._lock:
            self._pace.record(duration)
        self._events.put(finished_from(job, outcome, duration))
        self._pipe.wake()

    def poll(self) -> list[Event]:
        self._pipe.clear()
        events: list[Event] = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return events
            if isinstance(event, Finished):
                with self._lock:
                    if self._running.pop((event.job.id, event.job.attempt), None) is None:
                        continue  # abandoned by stop_all: its lease decides
            events.append(event)

    def waitables(self) -> list[int]:
        return [self._pipe.read_fd]

    def running(self) -> list[Job]:
        with self._lock:
            return [job for job, _ in self._running.values()]

    def next_deadline(self) -> float | None:
        return None

    def _runs_of(self, job_id: int) -> list[tuple[Job, Any]]:
        """The runs held of one job (a cancel stops each)."""
        with self._lock:
            return [entry for (held, _), entry in self._running.items() if held == job_id]

    def _take_all(self) -> list[tuple[Job, Any]]:
        with self._lock:
            entries = list(self._running.values())
            self._running.clear()
        return entries


class ThreadExecutor(_InProcess):
    """Jobs in a thread pool of the worker process; for I/O-bound tasks. Cancelling is
    cooperative: the task sees `current_job().cancelled`.

    A job over its `timeout` fails with JobTimeout at the deadline and is told to stop as a
    cancelled one is. Threads cannot be killed, so until its thread returns it keeps its
    slot: a job started there would wait behind it, its own timeout running meanwhile.
    """

    def __init__(
        self, registry: Registry, concurrency: int, result_limit: int | None = None
    ) -> None:
        super().__init__(registry, concurrency, result_limit)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="offload-job")
        #: (job id, attempt) -> (monotonic deadline, timeout) of running jobs with a timeout.
        self._deadlines: dict[tuple[int, int], tuple[float, float]] = {}
        #: Runs whose timeout was reported while their thread still runs.
        self._overdue: set[tuple[int, int]] = set()

    def free(self) -> int:
        return super().free() - len(self._overdue)

    def submit(self, jobs: list[Job]) -> None:
        for job in jobs:
            ctx = self._context(job)
            with self._lock:
                self._running[job.id, job.attempt] = (job, ctx)
            self._pool.submit(self._run, job, ctx)

    def _run(self, job: Job, ctx: JobContext) -> None:
        definition = lookup(self.registry, job.task)
        timeout = None if isinstance(definition, dict) else definition.options.timeout
        with self._lock:  # its turn came: it runs unless cancelled or abandoned meanwhile
            if not self._held(job, ctx):
                return
            if ctx.cancel_event.is_set():
                self._not_started(job)  # `poll` lets its slot go
                return
            if timeout is not None:  # from its start, not from its wait in the queue
                self._deadlines[job.id, job.attempt] = (time.monotonic() + timeout, timeout)
        began = time.perf_counter()
        outcome = run_call(definition, job.args, job.kwargs, ctx, self.result_limit)
        duration = time.perf_counter() - began
        with self._lock:  # decided under the lock `poll` times jobs out under: one outcome
            key = (job.id, job.attempt)
            self._deadlines.pop(key, None)
            if key in self._overdue:
                self._overdue.discard(key)  # its timeout is recorded; give the slot back
                self._pipe.wake()
                return
        self._done(job, outcome, duration)

    def poll(self) -> list[Event]:
        events = super().poll()
        if self._deadlines:
            events += self._timed_out(time.monotonic())
        return events

    def _timed_out(self, now: float) -> list[Event]:
        """Report the runs past their deadline, and ask their threads to stop."""
        late: list[Event] = []
        with self._lock:
            for key, (deadline, timeout) in list(self._deadlines.items()):
                if deadline > now:
                    continue
                del self._deadlines[key]
                job, ctx = self._running.pop(key)
                self._overdue.add(key)
                ctx.cancel_event.set()
                log.warning(
                    "job %s exceeded timeout=%gs: its thread is told to stop and keeps its slot "
                    "until it returns",
                    job.id,
                    timeout,
                )
                late.append(stopped(job, "JobTimeout", f"exceeded timeout={timeout:g}s"))
        return late

    def next_deadline(self) -> float | None:
        with self._lock:
            return min((d for d, _ in self._deadlines.values()), default=None)

    def cancel(self, job_id: int) -> None:
        for _, ctx in self._runs_of(job_id):
            ctx.cancel_event.set()

    def stop_all(self) -> list[Job]:
        # Threads cannot be killed: their jobs are abandoned; leases make them run again.
        with self._lock:
            self._deadlines.clear()
        return [job for job, _ in self._take_all()]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pipe.close()


class AsyncExecutor(_InProcess):
    """`async def` tasks on one event loop in a thread of the worker; cancel is immediate."""

    def __init__(
        self, registry: Registry, concurrency: int, result_limit: int | None = None
    ) -> None:
        super().__init__(registry, concurrency, result_limit)
        self._turns: asyncio.Semaphore | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="offload-async", daemon=True
        )
        self._thread.start()

    def submit(self, jobs: list[Job]) -> None:
        for job in jobs:
            future = asyncio.run_coroutine_threadsafe(self._run(job), self._loop)
            with self._lock:
                self._running[job.id, job.attempt] = (job, future)

    async def _run(self, job: Job) -> None:
        if self._turns is None:  # made on the loop's own thread, where it is awaited
            self._turns = asyncio.Semaphore(self.concurrency)
        try:
            await self._turns.acquire()  # at most `concurrency` run; the rest wait their turn
        except asyncio.CancelledError:
            self._not_started(job)
            return
        try:
            definition = lookup(self.registry, job.task)
            ctx = self._context(job)
            began = time.perf_counter()
            if isinstance(definition, dict):
                outcome: Outcome = (False, definition, True, False)
            else:
                outcome = await run_async_call(
                    definition, job.args, job.kwargs, ctx, self.result_limit
                )
            self._done(job, outcome, time.perf_counter() - began)
        finally:
            self._turns.release()

    def cancel(self, job_id: int) -> None:
        for _, future in self._runs_of(job_id):
            future.cancel()  # thread-safe: cancels the task on the loop

    def stop_all(self) -> list[Job]:
        entries = self._take_all()
        for _, future in entries:
            future.cancel()
        return [job for job, _ in entries]

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():  # closed here, not by the garbage collector at exit,
            self._loop.close()  # which may find its self-pipe's socket closed already
        self._pipe.close()


async def run_async_call(
    definition: TaskDef,
    args: list[Any],
    kwargs: dict[str, Any],
    ctx: JobContext,
    result_limit: int | None,
) -> Outcome:
    """Run an `async def` task on the current loop, under its timeout."""
    deadline = asyncio.timeout(definition.options.timeout)  # None: no limit
    try:
        with Running(ctx):
            value = definition.target(*args, **kwargs)
            if inspect.isawaitable(value):
                async with deadline:
                    value = await value
        return True, serialization.dumps(value, "the task's result", result_limit), False, False
    except TimeoutError as exc:
        if not deadline.expired():  # the task's own (its asyncio.wait_for...): its error
            return False, error_entry(exc), False, False
        limit = definition.options.timeout or 0
        return False, limit_error("JobTimeout", f"exceeded timeout={limit:g}s"), False, False
    except asyncio.CancelledError:
        stopped = JobCancelled(f"job {ctx.id} was cancelled while running")
        return False, error_entry(stopped, with_traceback=False), False, True
    except JobCancelled as exc:
        return False, error_entry(exc, with_traceback=False), False, True
    except Exception as exc:
        return failure(definition, args, kwargs, exc)
