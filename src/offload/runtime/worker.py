"""The worker: claims jobs in batches, runs them in an executor, records outcomes.

One loop in one thread does all database work, so the executor's jobs never delay a
heartbeat. Each turn it collects finished jobs and writes their outcomes in one statement,
fills free slots from a prefetch buffer, claims more in one statement per queue, renews every
lease it holds in one statement, and rescues leases that other (dead) workers let expire.
Between turns it sleeps on the backend's wake-up channel and the executor's descriptors.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import wait
from types import FrameType
from typing import Any

import orjson

from offload.backends.base import Backend, Lease, Listener, Outcome, WorkerInfo
from offload.core.errors import ConfigurationError, OffloadError, UnknownTask
from offload.core.job import Job
from offload.core.options import RetryPolicy
from offload.core.serialization import DEFAULT_PAYLOAD_LIMIT
from offload.core.states import JobState
from offload.core.task import Registry
from offload.runtime.execution import Finished
from offload.runtime.executors import Executor, ProcessExecutor, ThreadExecutor
from offload.runtime.scheduler import Scheduler

log = logging.getLogger("offload.worker")

EXECUTORS = ("process", "thread")
_DEFAULT_RETRY = RetryPolicy()


class Worker:
    """Runs jobs of the given queues until stopped; see `run`."""

    def __init__(
        self,
        backend: Backend,
        registry: Registry,
        *,
        queues: Sequence[str] = ("default",),
        concurrency: int | None = None,
        executor: str = "process",
        app_path: str | None = None,
        lease: float = 30.0,
        poll_interval: float = 1.0,
        rescue_interval: float = 5.0,
        shutdown_timeout: float = 30.0,
        prefetch: int | None = None,
        burst: bool = False,
        max_jobs_per_child: int | None = None,
        result_limit: int | None = DEFAULT_PAYLOAD_LIMIT,
        install_signals: bool = True,
        scheduler: Scheduler | None = None,
    ) -> None:
        if executor not in EXECUTORS:
            raise ConfigurationError(f"unknown executor {executor!r}; one of {EXECUTORS}")
        if executor == "process" and not app_path:
            raise ConfigurationError(
                "the process executor needs the app as an import path (app_path='module:app'); "
                "use executor='thread' for an app that is not importable"
            )
        if not queues:
            raise ConfigurationError("a worker needs at least one queue")
        for name, value in (
            ("lease", lease),
            ("poll_interval", poll_interval),
            ("rescue_interval", rescue_interval),
        ):
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
        self.backend = backend
        self.registry = registry
        self.queues = list(queues)
        self.concurrency = concurrency or os.cpu_count() or 1
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be >= 1, got {concurrency}")
        self.executor_kind = executor
        self.app_path = app_path
        self.lease = float(lease)
        self.heartbeat_interval = min(self.lease / 3, 10.0)
        self.poll_interval = poll_interval
        self.rescue_interval = rescue_interval
        self.shutdown_timeout = shutdown_timeout
        self.prefetch = self.concurrency if prefetch is None else prefetch
        self.burst = burst
        self.max_jobs_per_child = max_jobs_per_child
        self.result_limit = result_limit
        self.install_signals = install_signals
        #: A scheduler run in a thread of this worker (`offload worker --scheduler`).
        self.scheduler = scheduler
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.processed = 0
        self._buffer: deque[Job] = deque()
        self._stopping = threading.Event()
        self._abort = False
        self._queue_turn = 0

    # -- control ----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask for a graceful stop: no more claims, running jobs may finish."""
        self._stopping.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping.is_set():
            log.warning("second signal: stopping at once; leases will rerun unfinished jobs")
            self._abort = True
        else:
            log.info("signal %s: finishing running jobs, then stopping", signum)
        self._stopping.set()

    # -- main loop --------------------------------------------------------------------

    def run(self) -> int:
        """Work until stopped (or, in burst mode, until no job is due); return an exit code."""
        previous = self._install_signals()
        listener: Listener = self.backend.listener()
        executor = self._make_executor()
        self.backend.worker_register(
            WorkerInfo(
                id=self.id,
                host=socket.gethostname(),
                pid=os.getpid(),
                queues=self.queues,
                concurrency=self.concurrency,
                started_at=self.backend.now(),
                heartbeat_at=self.backend.now(),
                wake=listener.address,
            )
        )
        log.info(
            "worker %s on queues %s, %s x %d",
            self.id,
            self.queues,
            self.executor_kind,
            self.concurrency,
        )
        scheduler_thread = None
        if self.scheduler is not None:
            scheduler_thread = threading.Thread(
                target=self.scheduler.run, name="offload-scheduler", daemon=True
            )
            scheduler_thread.start()
        try:
            self._loop(listener, executor)
            if not self._abort:
                self._drain(executor)
        finally:
            if scheduler_thread is not None and self.scheduler is not None:
                self.scheduler.stop()
                scheduler_thread.join(5)
            if self._abort:
                executor.stop_all()
            executor.close()
            listener.close()
            try:
                self.backend.worker_unregister(self.id)
            except OffloadError:
                log.exception("could not unregister worker %s", self.id)
            self._restore_signals(previous)
        return 0

    def _loop(self, listener: Listener, executor: Executor) -> None:
        more = True  # jobs may be waiting: claim without waiting for a wake-up
        next_poll = next_heartbeat = next_rescue = time.monotonic()
        while not self._stopping.is_set():
            self._finish(executor.poll())
            self._dispatch(executor)
            now = time.monotonic()
            want = self.concurrency + self.prefetch - len(self._buffer) - len(executor.running())
            claimed_any = False
            if want > 0 and (more or now >= next_poll):
                claimed = self._claim(want)
                claimed_any = bool(claimed)
                more = len(claimed) == want
                next_poll = now + self.poll_interval
                self._buffer.extend(claimed)
                self._dispatch(executor)
            if now >= next_heartbeat:
                self._heartbeat(executor)
                next_heartbeat = now + self.heartbeat_interval
            if now >= next_rescue:
                self._rescue()
                next_rescue = now + self.rescue_interval
            if (
                self.burst
                and not claimed_any
                and not more
                and not self._buffer
                and not executor.running()
            ):
                return
            wake_at = min(next_heartbeat, next_rescue)
            if want > 0 or not executor.free():
                wake_at = min(wake_at, next_poll)
            deadline = executor.next_deadline()
            if deadline is not None:
                wake_at = min(wake_at, deadline)
            if more and executor.free() and not self._buffer:
                timeout = 0.0
            else:
                timeout = max(wake_at - time.monotonic(), 0.0)
            ready = wait([listener.fileno(), *executor.waitables()], timeout)
            if listener.fileno() in ready:
                listener.drain()
                more = True

    def _drain(self, executor: Executor) -> None:
        """Graceful stop: give back unstarted jobs, let running ones finish, then release."""
        self._release(list(self._buffer))
        self._buffer.clear()
        deadline = time.monotonic() + self.shutdown_timeout
        next_heartbeat = time.monotonic()
        while executor.running() and not self._abort and time.monotonic() < deadline:
            self._finish(executor.poll())
            if time.monotonic() >= next_heartbeat:
                self._heartbeat(executor)
                next_heartbeat = time.monotonic() + self.heartbeat_interval
            wait(executor.waitables(), min(0.5, max(deadline - time.monotonic(), 0)))
        self._finish(executor.poll())
        leftover = executor.stop_all()
        if leftover:
            log.warning("shutdown timeout: returning %d running jobs to the queue", len(leftover))
            self._release(leftover)

    # -- steps ------------------------------------------------------------------------

    def _claim(self, want: int) -> list[Job]:
        """Claim up to `want` jobs, taking queues in turn so none starves."""
        claimed: list[Job] = []
        count = len(self.queues)
        for offset in range(count):
            queue = self.queues[(self._queue_turn + offset) % count]
            claimed += self.backend.job_claim(self.id, queue, want - len(claimed), self.lease)
            if len(claimed) >= want:
                break
        self._queue_turn = (self._queue_turn + 1) % count
        return claimed

    def _dispatch(self, executor: Executor) -> None:
        while self._buffer and executor.free() > 0:
            executor.submit(self._buffer.popleft())

    def _finish(self, finished: list[Finished]) -> None:
        if not finished:
            return
        outcomes = [self._outcome(f) for f in finished]
        lost = self.backend.job_finish(self.id, outcomes)
        self.processed += len(finished)
        for job_id in lost:
            log.warning("job %s: lease lost before its outcome was recorded", job_id)

    def _outcome(self, f: Finished) -> Outcome:
        job = f.job
        if f.ok:
            return Outcome(job.id, job.attempt, JobState.SUCCEEDED, result=f.result)
        error = dict(f.error or {})
        error["at"] = time.time()
        error["attempt"] = job.attempt
        error_text = orjson.dumps(_clean(error)).decode()
        if f.permanent or job.attempt >= job.max_attempts:
            return Outcome(job.id, job.attempt, JobState.DEAD, error=error_text)
        return Outcome(
            job.id,
            job.attempt,
            JobState.RETRYING,
            error=error_text,
            delay=self._retry_policy(job).delay(job.attempt),
        )

    def _retry_policy(self, job: Job) -> RetryPolicy:
        try:
            return self.registry.get(job.task).options.retry
        except UnknownTask:
            return _DEFAULT_RETRY

    def _heartbeat(self, executor: Executor) -> None:
        held = [Lease(job.id, job.attempt) for job in (*self._buffer, *executor.running())]
        lost = set(self.backend.job_heartbeat(self.id, held, self.lease))
        if lost:
            log.warning("lost the lease on jobs %s", sorted(lost))
            self._buffer = deque(job for job in self._buffer if job.id not in lost)
        self.backend.worker_heartbeat(self.id)

    def _rescue(self) -> None:
        rescued = self.backend.job_rescue()
        if rescued:
            log.warning("rescued %d jobs whose lease expired: %s", len(rescued), rescued[:20])

    def _release(self, jobs: list[Job]) -> None:
        if jobs:
            self.backend.job_release(self.id, [Lease(job.id, job.attempt) for job in jobs])

    # -- set-up -----------------------------------------------------------------------

    def _make_executor(self) -> Executor:
        if self.executor_kind == "thread":
            return ThreadExecutor(self.registry, self.concurrency, self.result_limit)
        assert self.app_path is not None
        return ProcessExecutor(
            self.app_path,
            self.concurrency,
            self._timeout_of,
            result_limit=self.result_limit,
            max_jobs_per_child=self.max_jobs_per_child,
        )

    def _timeout_of(self, job: Job) -> float | None:
        try:
            return self.registry.get(job.task).options.timeout
        except UnknownTask:
            return None

    def _install_signals(self) -> dict[int, Any]:
        if not self.install_signals or threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _clean(value: Any) -> Any:
    """Strip NUL characters, which PostgreSQL's jsonb cannot store, from error text."""
    if isinstance(value, str):
        return value.replace("\x00", "\\0")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value
