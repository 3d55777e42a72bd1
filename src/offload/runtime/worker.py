"""The worker: claims jobs in batches, runs them in an executor, records outcomes.

One loop in one thread claims, renews and rescues, so the executor's jobs never delay a
heartbeat. Each turn it hands finished jobs' outcomes to its outcome writer (which records
them in batches: see `offload.runtime.outcomes`), fills free slots from a prefetch buffer,
claims more in one statement per queue, renews every lease it holds in one statement, and,
while it holds the elected rescue duty (`offload.runtime.leader`), rescues leases that other
(dead) workers let expire. Between turns it sleeps on the backend's wake-up channel, the
executor's descriptors and the writer's.

A database outage (a restart, a cut link, a full disk) stops the claims, not the worker: its
running jobs run on, their outcomes wait in the writer, and it reconnects with a jittered
backoff, then claims, renews its leases and resumes (see `_ride_out`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from types import FrameType
from typing import Any

from offload.backends.base import Backend, Listener
from offload.backends.params import (
    ClaimParams,
    GroupClaimParams,
    HeartbeatParams,
    Lease,
    Outcome,
    ParentsRead,
    ParentsReadParams,
    ProgressReport,
    PumpParams,
    ReleaseParams,
    RescueParams,
)
from offload.core.errors import (
    BackendUnavailable,
    ConfigurationError,
    OffloadError,
    ParentResultsTooLarge,
    PayloadTooLarge,
)
from offload.core.flow import DrainMeter
from offload.core.job import Job, JobSpec
from offload.core.options import EnqueueOptions, RetryPolicy, TaskOptions, check_count
from offload.core.records import WorkerInfo
from offload.core.serialization import DEFAULT_PAYLOAD_LIMIT
from offload.core.states import JobState
from offload.core.task import Registry, TaskDef
from offload.core.topics import Subscription, check_groups
from offload.core.workflow import DEFAULT_PARENT_RESULTS_LIMIT, Takes, with_parents
from offload.runtime import joblog
from offload.runtime.batch import gather, split
from offload.runtime.delivery import unwrap
from offload.runtime.executor import Event, Finished, Progress, SelfPipe
from offload.runtime.hooks import HookErrors, Middlewares
from offload.runtime.leader import (
    DEFAULT_LEADER_LEASE,
    MIN_LEADER_LEASE,
    RESCUE,
    Elector,
    check_election,
)
from offload.runtime.observer import JobObserver
from offload.runtime.outage import Outage, passing
from offload.runtime.outcomes import (
    CANCELLED_BEFORE_START,
    OutcomeWriter,
    outcome_of,
    outcome_writer,
)
from offload.runtime.pool import ExecutorPool, PoolSpec, Waiter, build_pool, task_options
from offload.runtime.running import error_entry
from offload.runtime.scheduler import Scheduler, SchedulerThread
from offload.runtime.settings import check_settings, install_handlers, restore_handlers

log = logging.getLogger("offload.worker")

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
        lease: float = 20.0,
        poll_interval: float = 1.0,
        rescue_interval: float = 5.0,
        shutdown_timeout: float = 30.0,
        prefetch: int | None = None,
        burst: bool = False,
        max_jobs_per_child: int | None = None,
        max_child_memory_mb: float | None = None,
        result_limit: int | None = DEFAULT_PAYLOAD_LIMIT,
        install_signals: bool = True,
        scheduler: Scheduler | None = None,
        async_concurrency: int = 100,
        flush_delay: float = 0.005,
        clock: Callable[[], datetime] | None = None,
        connections: int = 2,
        observer: JobObserver | None = None,
        parent_results_limit: int = DEFAULT_PARENT_RESULTS_LIMIT,
        groups: Sequence[str] | None = None,
        message_limit: int | None = DEFAULT_PAYLOAD_LIMIT,
        middleware: Middlewares | None = None,
        elect: bool = True,
        leader_lease: float | None = None,
    ) -> None:
        check_settings(
            executor=executor,
            app_path=app_path,
            queues=queues,
            async_concurrency=async_concurrency,
            shutdown_timeout=shutdown_timeout,
            periods={
                "lease": lease,
                "poll_interval": poll_interval,
                "rescue_interval": rescue_interval,
            },
            prefetch=prefetch,
        )
        # By default the rescue duty's lease is the jobs' (a dead leader is replaced about when
        # the jobs it held become rescuable anyway), but never past the scheduler's default:
        # a long-lease pool holding the duty must not delay the rescue of short-lease
        # workers' jobs by its own lease, nor a long `lease` refuse a default nobody set.
        if leader_lease is None and isinstance(lease, int | float):
            leader_lease = max(min(float(lease), DEFAULT_LEADER_LEASE), MIN_LEADER_LEASE)
        leader_lease = check_election(elect, leader_lease)
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            raise ConfigurationError(f"connections must be an int >= 1, got {connections!r}")
        self.backend = backend
        self.registry = registry
        #: Database connections the worker holds at most (the loop's, the outcome writer's),
        #: besides its wake-up channel: a few whatever the concurrency.
        self.connections = connections
        #: The consumer groups served, by queue: before each claim from a group's queue, the
        #: group's next messages are pumped into it (`groups`: their names; None: all the
        #: registry declares). Workers serving no group pay nothing for topics.
        self._pumps: dict[str, tuple[Subscription, JobSpec]] = {}
        #: Each task's subscription (None: a plain task), looked up once per task name.
        self._subscriptions: dict[str, Subscription | None] = {}
        check_groups(groups, [d.subscription for d in registry.definitions() if d.subscription])
        for definition in registry.definitions():
            subscription = definition.subscription
            if subscription is not None and (groups is None or subscription.group in groups):
                self._pumps[subscription.queue] = (subscription, definition.spec(EnqueueOptions()))
        self.queues = list(queues) + [queue for queue in self._pumps if queue not in queues]
        self.concurrency = concurrency or os.cpu_count() or 1
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be >= 1, got {concurrency}")
        #: What the executors are built from, when `run` starts.
        self.pool_spec = PoolSpec(
            registry=registry,
            primary=executor,
            concurrency=self.concurrency,
            async_concurrency=async_concurrency,
            app_path=app_path,
            result_limit=result_limit,
            max_jobs_per_child=max_jobs_per_child,
            max_child_memory_mb=max_child_memory_mb,
        )
        self.lease = float(lease)
        self.heartbeat_interval = min(self.lease / 3, 10.0)
        self.poll_interval = poll_interval
        self.rescue_interval = rescue_interval
        self.shutdown_timeout = shutdown_timeout
        #: Jobs claimed beyond free slots; None: `_prefetch` adapts it to the executor.
        self.prefetch = prefetch
        #: Seconds an outcome may wait to share a commit (SQLite; see `LoopWriter`).
        self.flush_delay = flush_delay
        self._writer: OutcomeWriter | None = None
        self.burst = burst
        self.install_signals = install_signals
        #: A scheduler run in a thread of this worker (`offload worker --scheduler`).
        self.scheduler = scheduler
        #: The time claims, heartbeats and rescues compare with (None: the database's
        #: clock); tests move it forward instead of sleeping through leases.
        self.clock = clock
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: The one place the supervisor tells of jobs started and runs ended, in batches:
        #: the job log, `observer` (metrics: `offload worker --metrics-port`), and the App's
        #: middleware when one has a job hook. Each call is guarded: what one raises is
        #: logged (`HookErrors`), never lost outcomes.
        self._observers: tuple[JobObserver, ...] = tuple(
            o
            for o in (joblog, observer, middleware if middleware and middleware.jobs else None)
            if o is not None
        )
        self._hook_errors = middleware.errors if middleware is not None else HookErrors()
        #: The App's middleware when one has a job hook: told also of runs whose lease
        #: was lost (`job_lost`), which no observer's `ended` sees.
        self._middleware = middleware if middleware is not None and middleware.jobs else None
        #: Bytes of JSON a job's parents' results may total (`ParentResultsTooLarge`).
        self.parent_results_limit = check_count("parent_results_limit", parent_results_limit)
        #: The bound on one message a subscriber publishes with its acknowledgement: the
        #: app's payload_limit, as for `App.publish` (over it, the run fails).
        self.message_limit = message_limit
        #: The rescue duty's lease, which this worker holds or stands for: only its holder
        #: rescues (`offload.runtime.leader`). None (`elect` False, or a burst worker,
        #: which must see rescued jobs before it exits): it rescues on its own timer.
        self.elector = (
            Elector(backend, RESCUE, self.id, leader_lease, log=log)
            if elect and not burst
            else None
        )
        self._buffer: deque[Job] = deque()
        #: Batch tasks per queue served: their jobs are claimed by group, one call each.
        self._batches: dict[str, list[TaskDef]] = {}
        for definition in registry.definitions():
            if definition.options.batch is not None and definition.options.queue in queues:
                self._batches.setdefault(definition.options.queue, []).append(definition)
        #: The jobs of each batch call held, by its stand-in job's (id, attempt).
        self._calls: dict[tuple[int, int], list[Job]] = {}
        #: Jobs whose cancel was asked for while their batch call was held: they end
        #: cancelled when it ends.
        self._cancelled: set[int] = set()
        #: A batch call ended since the loop last looked: its slot may take a ready group
        #: now (calls are not prefetched, so no buffered job would fill it).
        self._call_ended = False
        #: (id, attempt) of running jobs whose lease another attempt took: not renewed again.
        self._lost: set[tuple[int, int]] = set()
        self._stopping = threading.Event()
        self._abort = False
        self._scheduler_failed = False
        self._queue_turn = 0
        self._wakeup = SelfPipe()
        self._waiter = Waiter()
        self._last_beat = 0.0
        self._listener: Listener | None = None
        self._outage = Outage(f"worker {self.id}", log)
        #: Jobs this worker ended, per queue: its drain rates, sent with its heartbeat.
        self._drained = DrainMeter(time.monotonic())
        #: When a stop was asked for: the grace period counts from then.
        self._stop_at: float | None = None
        #: Turns of the loop so far: a busy loop shows as thousands a second.
        self.turns = 0

    # -- control ----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask for a graceful stop: no more claims, running jobs may finish."""
        self._stop_at = self._stop_at or time.monotonic()
        self._stopping.set()
        self._wakeup.wake()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping.is_set():
            log.warning("second signal: stopping at once; leases will rerun unfinished jobs")
            self._abort = True
        else:
            log.info("signal %s: finishing running jobs, then stopping", signum)
        self._stop_at = self._stop_at or time.monotonic()
        self._stopping.set()
        self._wakeup.wake()

    # -- main loop --------------------------------------------------------------------

    def run(self) -> int:
        """Work until stopped (or, in burst mode, until no job is due); return an exit code."""
        previous = self._install_signals()
        self.backend.limit_connections(self.connections)
        first = self._listener = self.backend.listener()
        pool = self._make_pool()
        self.backend.workers.register(
            WorkerInfo(
                id=self.id,
                host=socket.gethostname(),
                pid=os.getpid(),
                queues=self.queues,
                concurrency=self.concurrency,
                started_at=self.backend.now(),
                heartbeat_at=self.backend.now(),
                wake=first.address,
            )
        )
        log.info(
            "worker %s on queues %s, %s x %d",
            self.id,
            self.queues,
            self.pool_spec.primary,
            self.concurrency,
        )
        self._warn_unserved()
        writer = self._writer = outcome_writer(self.backend, self.id, self.flush_delay)
        embedded = None
        if self.scheduler is not None:
            embedded = SchedulerThread(self.scheduler, on_failure=self._scheduler_stopped)
            embedded.start()
        try:
            self._work(pool)
            if not self._abort:
                self._drain(pool)
            self._close_writer(writer)
        finally:
            if embedded is not None:
                embedded.stop()
            if self._abort:
                pool.stop_all()
            pool.close()
            try:
                writer.close(_ABORT_WRITE_TIMEOUT)  # after an error; else closed already
            except OffloadError:
                log.exception("could not record the last outcomes; their jobs will run again")
            if self._listener is not None:
                _close_quietly(self._listener)
            self._wakeup.close()
            self._waiter.close()
            try:
                if self._outage.active:  # its row ages out: `offload workers` shows it lost
                    log.warning("worker %s stops during an outage, still registered", self.id)
                else:
                    self.backend.workers.unregister(self.id)
            except BackendUnavailable as exc:
                log.warning("could not unregister worker %s: %s", self.id, exc)
            except OffloadError:
                log.exception("could not unregister worker %s", self.id)
            self._resign()
            self._restore_signals(previous)
        return 1 if self._scheduler_failed else 0

    def _work(self, pool: ExecutorPool) -> None:
        """Run the loop until stopped, riding out outages."""
        while self._listener is not None:
            try:
                self._loop(self._listener, pool)
                return
            except BackendUnavailable as exc:
                if not passing(exc):
                    raise
                _close_quietly(self._listener)
                self._listener = None  # closed: `run` must not close it again if this raises
                self._listener = self._ride_out(exc, pool)

    def _ride_out(self, exc: BackendUnavailable, pool: ExecutorPool) -> Listener | None:
        """Wait out an outage: running jobs go on (their outcomes wait in the writer), and
        the database is tried again after a jittered backoff until it answers and a new
        wake-up channel is open (wake-ups sent meanwhile are lost: `_loop` then claims at
        once and renews its leases). Return that channel, or None once asked to stop."""
        delay = self._outage.failed(exc)
        while not self._stopping.is_set():
            self._idle_until(pool, time.monotonic() + delay)
            if self._stopping.is_set():
                break
            try:
                self.backend.now()
                listener = self.backend.listener()
            except BackendUnavailable as again:
                if not passing(again):
                    raise
                delay = self._outage.failed(again)
                continue
            self._outage.recovered()
            self._outcomes().resume()
            return listener
        return None

    def _idle_until(self, pool: ExecutorPool, until: float) -> None:
        """Keep running jobs going without the database until `until`: collect their ends
        (outcomes are kept; progress reports, hints only, are dropped), enforce deadlines."""
        while True:
            self._collect(pool.poll(), online=False)
            self._dispatch(pool)
            now = time.monotonic()
            if now >= until:
                return
            deadline = pool.next_deadline()
            timeout = until - now if deadline is None else min(until, deadline) - now
            fds = [self._wakeup.read_fd, *pool.waitables()]
            if self._wakeup.read_fd in self._waiter.wait(fds, max(timeout, 0.0)):
                self._wakeup.clear()
                if self._stopping.is_set():
                    return

    def _close_writer(self, writer: OutcomeWriter) -> None:
        """Write the last outcomes; during an outage, try briefly and give up with a line
        (their jobs run again once their leases expire) rather than outstay the grace."""
        timeout = max(self.shutdown_timeout, _ABORT_WRITE_TIMEOUT)
        if self._outage.active:  # within the grace period plus a last try's few seconds
            end = (self._stop_at or time.monotonic()) + self.shutdown_timeout + _LAST_TRY
            timeout = max(end - time.monotonic(), 0.5)
        try:
            # Raises if the last outcomes could not be written, as any failed write does.
            writer.close(timeout)
        except BackendUnavailable as exc:
            if not passing(exc):
                raise
            log.warning("could not record the last outcomes (their jobs run again): %s", exc)

    def _scheduler_stopped(self) -> None:
        """The embedded scheduler ended on an error: stop (exit code 1) rather than run on
        without it unnoticed."""
        log.critical("the embedded scheduler stopped on an error; stopping the worker")
        self._scheduler_failed = True
        if not self._stopping.is_set():  # else run() may have closed the wake-up pipe
            self.stop()

    def _loop(self, listener: Listener, pool: ExecutorPool) -> None:
        more = True  # jobs may be waiting: claim without waiting for a wake-up
        next_poll = next_heartbeat = next_rescue = time.monotonic()
        writer = self._outcomes()
        quiet = False  # the last wait woke for no executor descriptor, before any deadline
        while not self._stopping.is_set():
            self.turns += 1
            if writer.check():
                more = True  # a retry was recorded; with no backoff it is due now
            if not quiet:  # else nothing ended: on to the claim (an idle worker's wake-up)
                self._collect(pool.poll())
            if self._call_ended:
                self._call_ended = False
                more = True
            self._dispatch(pool)
            if writer.unwritten():  # written first when due: a retry it records is claimable
                writer.turn(busy=bool(self._buffer or pool.running()))
            now = time.monotonic()
            free = pool.claimable()
            want = free + self._prefetch(pool) - len(self._buffer)
            # Claim in batches: only once the buffer can no longer fill every free slot.
            low = len(self._buffer) <= free
            # A burst worker exits only after a claim that found nothing, made once every
            # outcome was recorded and nothing ran: a finished job may have enqueued another
            # whose wake-up is not read yet.
            settled = self.burst and not (self._buffer or pool.running() or writer.unwritten())
            drained = False
            if want > 0 and low and (more or settled or now >= next_poll):
                claimed, wait = self._claim(want, free - len(self._buffer))
                # Jobs a rate holds back are due: a burst worker waits for them.
                drained = settled and not claimed and wait is None
                more = len(claimed) == want
                # Fewer than asked: look again at the next poll, a wake-up (an enqueue, or
                # a limited job finished anywhere), or when a rate lets a held job start.
                next_poll = now + self.poll_interval
                if wait is not None:
                    next_poll = min(next_poll, now + max(wait, _MIN_WAIT))
                self._buffer.extend(self._with_parents(claimed))
                self._dispatch(pool)
            if now >= next_heartbeat:
                self._heartbeat(pool)
                next_heartbeat = self._last_beat + self.heartbeat_interval
            elector = self.elector
            if elector is not None and now >= elector.due and elector.poll():
                next_rescue = now  # a new term: the last holder may have died, rescue now
            if now >= next_rescue:
                if (elector is None or elector.leading()) and self._rescue_duty():
                    drained = False  # rescued jobs are due: claim them before stopping
                    more = True
                next_rescue = now + self.rescue_interval
            if drained and not writer.unwritten():
                if not writer.check():
                    return
                more = True  # the last write held a retry: look for it before stopping
            wake_at = min(next_heartbeat, next_rescue)
            if elector is not None:
                wake_at = min(wake_at, elector.due)
            # The poll time only when a claim can follow: with more jobs buffered than free
            # slots, a past poll time would make every turn a zero-timeout one until a run
            # ends (which the executor's waitables report anyway).
            free = pool.claimable()
            if len(self._buffer) <= free and free + self._prefetch(pool) > len(self._buffer):
                wake_at = min(wake_at, next_poll)
            pool_due = pool.next_deadline()
            for deadline in (pool_due, writer.deadline()):
                if deadline is not None:
                    wake_at = min(wake_at, deadline)
            if self._outage.since is not None and not writer.unwritten():
                self._outage.recovered()  # this turn reached the database and wrote all
            claim_now = more and want > 0 and len(self._buffer) <= pool.claimable()
            timeout = 0.0 if claim_now else max(wake_at - time.monotonic(), 0.0)
            fds = [listener.fileno(), self._wakeup.read_fd, *writer.waitables()]
            executors = pool.waitables()
            ready = self._waiter.wait([*fds, *executors], timeout)
            # The executors' `poll` (a system call per child) is skipped only when the wait
            # returned for another descriptor and no executor deadline has come.
            quiet = bool(ready) and ready.isdisjoint(executors)
            if quiet and pool_due is not None:
                quiet = time.monotonic() < pool_due
            if listener.fileno() in ready:
                listener.drain()
                more = True
                # A wake-up may also be a cancel request: look soon, at most 4 times a second.
                next_heartbeat = min(next_heartbeat, self._last_beat + 0.25)

    def _drain(self, pool: ExecutorPool) -> None:
        """Graceful stop: give back unstarted jobs, let running ones finish, then release.

        The grace period counts from the stop request. During an outage the database is
        left alone (each try could take a connect timeout): outcomes wait in the writer for
        one last attempt, and what is not given back runs again once its lease expires.
        """
        self._release(list(self._buffer))
        self._buffer.clear()
        deadline = (self._stop_at or time.monotonic()) + self.shutdown_timeout
        next_heartbeat = time.monotonic()
        writer = self._outcomes()
        while pool.running() and not self._abort and time.monotonic() < deadline:
            online = not self._outage.active
            try:
                writer.check()
                self._collect(pool.poll(), online=online)
                if online:
                    writer.turn(busy=False)
                if online and time.monotonic() >= next_heartbeat:
                    self._heartbeat(pool)
                    next_heartbeat = time.monotonic() + self.heartbeat_interval
            except BackendUnavailable as exc:
                if not passing(exc):
                    raise
                self._outage.failed(exc)
            timeout = min(0.5, max(deadline - time.monotonic(), 0))
            deadline_of_job = pool.next_deadline()
            if deadline_of_job is not None:
                timeout = min(timeout, max(deadline_of_job - time.monotonic(), 0))
            fds = [self._wakeup.read_fd, *pool.waitables()]
            if self._wakeup.read_fd in self._waiter.wait(fds, timeout):
                self._wakeup.clear()  # a second signal: the loop condition sees _abort
        self._collect(pool.poll(), online=not self._outage.active)
        leftover = pool.stop_all()
        if leftover:
            log.warning("shutdown timeout: returning %d running jobs to the queue", len(leftover))
            self._release(leftover)

    # -- steps ------------------------------------------------------------------------

    def _claim(self, want: int, slots: int) -> tuple[list[Job], float | None]:
        """Claim up to `want` jobs, taking queues in turn so none starves; also return the
        seconds until a job a rate limit held back may start or a batch group is ready
        (None: nothing held back by time). In each queue, ready batch groups go first, one
        call per free slot (of `slots`: a call is not prefetched), then single jobs."""
        claimed: list[Job] = []
        wait: float | None = None
        count = len(self.queues)
        for offset in range(count):
            queue = self.queues[(self._queue_turn + offset) % count]
            calls, held = self._claim_groups(queue, min(slots, want - len(claimed)))
            claimed += calls
            slots -= len(calls)
            if held is not None:
                wait = held if wait is None else min(wait, held)
            if len(claimed) >= want:
                break
            pump = self._pumps.get(queue)
            if pump is not None:
                subscription, spec = pump
                limit = want - len(claimed)
                self.backend.topics.pump(
                    PumpParams(subscription.topic, subscription.group, spec, limit)
                )
            took = self.backend.claims.take(
                ClaimParams(self.id, queue, want - len(claimed), self.lease, self._now())
            )
            claimed += took.jobs
            if took.wait is not None:
                wait = took.wait if wait is None else min(wait, took.wait)
            if len(claimed) >= want:
                break
        self._queue_turn = (self._queue_turn + 1) % count
        return claimed, wait

    def _claim_groups(self, queue: str, slots: int) -> tuple[list[Job], float | None]:
        """Claim up to `slots` batch calls of `queue`'s batch tasks, each one group's
        jobs as one stand-in job; also return the seconds until a group not yet ready is."""
        calls: list[Job] = []
        wait: float | None = None
        for definition in self._batches.get(queue, ()):
            batch = definition.options.batch
            assert batch is not None
            while len(calls) < slots:
                took = self.backend.claims.take_group(
                    GroupClaimParams(
                        self.id,
                        queue,
                        definition.name,
                        batch.max_size,
                        batch.max_wait,
                        self.lease,
                        self._now(),
                    )
                )
                if not took.jobs:
                    if took.wait is not None:
                        wait = took.wait if wait is None else min(wait, took.wait)
                    break
                call = gather(took.jobs)
                self._calls[(call.id, call.attempt)] = took.jobs
                calls.append(call)
        return calls, wait

    def _with_parents(self, jobs: list[Job]) -> list[Job]:
        """The claimed jobs, those that waited for parents with their parents' outcomes
        (read now, in one statement) and, where they take results as arguments, those
        first. A job whose parents' results are over the limit ends dead at once."""
        waited = [job for job in jobs if job.parents]
        if not waited:
            return jobs
        read: dict[int, ParentsRead] = {}
        # A reducer streams its parents' results itself, as it consumes them: only how
        # each parent ended is read here, whatever their size.
        for streams in (False, True):
            ids = [job.id for job in waited if (job.takes == Takes.STREAM) is streams]
            if ids:
                limit = None if streams else self.parent_results_limit
                read |= self.backend.workflows.parents(ParentsReadParams(ids, not streams, limit))
        ready: list[Job] = []
        failed: list[Event] = []
        for job in jobs:
            parents = read.get(job.id) if job.parents else None
            if parents is None:
                ready.append(job)
            elif parents.too_large:
                error = ParentResultsTooLarge(job.id, parents.size, self.parent_results_limit)
                entry = error_entry(error, with_traceback=False)
                failed.append(Finished(job, ok=False, error=entry, permanent=True))
            else:
                ready.append(with_parents(job, parents.parents))
        if failed:
            self._collect(failed)
        return ready

    def _held(self, jobs: Sequence[Job]) -> list[Job]:
        """The stored jobs behind `jobs`: a batch call's stand-in stands for its jobs."""
        calls = self._calls
        if not calls:
            return list(jobs)
        return [held for job in jobs for held in calls.get((job.id, job.attempt), (job,))]

    def _split_calls(self, events: list[Event]) -> list[Event]:
        """Events of batch calls as their jobs' own: a call's end as each job's end (see
        `split`), a call's progress as each job's."""
        out: list[Event] = []
        for event in events:
            key = (event.job.id, event.job.attempt)
            if key not in self._calls:
                out.append(event)
            elif isinstance(event, Finished):
                jobs = self._calls.pop(key)
                self._call_ended = True
                out += split(event, jobs, self._cancelled)
                self._cancelled.difference_update(job.id for job in jobs)
            else:
                out += [Progress(job, event.fraction, event.message) for job in self._calls[key]]
        return out

    def _prefetch(self, pool: ExecutorPool) -> int:
        """Jobs to hold claimed beyond the free slots: `prefetch` if set, else 4 per slot,
        or half what the executor holds while it queues short jobs in its children (there
        a claim's round trip takes as long as dozens of jobs, which must not wait for it)."""
        if self.prefetch is not None:
            return self.prefetch
        return max(4 * self.concurrency, pool.capacity() // 2)

    def _dispatch(self, pool: ExecutorPool) -> None:
        """Start buffered jobs, in order, on executors with a free slot."""
        if self._buffer:
            self._buffer = pool.start(self._buffer)

    def _collect(self, events: list[Event], *, online: bool = True) -> None:
        """Hand outcomes to the writer; store progress reports now (one statement), unless
        the database is away (`online` False): they are hints, the next one replaces them."""
        if not events:
            return
        if self._calls:
            events = self._split_calls(events)
        if self._lost:
            events = self._drop_lost(events)
        reports = []
        runs = []
        outcomes = []
        for event in events:
            if isinstance(event, Progress):
                reports.append(
                    ProgressReport(event.job.id, event.job.attempt, event.fraction, event.message)
                )
            else:
                run, outcome = self._outcome(event)
                runs.append(run)
                outcomes.append(outcome)
        if reports and online:  # first: a job's last report must reach its row while running
            self.backend.claims.progress(self.id, reports)
        if outcomes:
            for observer in self._observers:
                try:
                    observer.ended(runs, outcomes)
                except Exception:  # an observer's failure must not lose the outcomes
                    self._hook_errors.failed(observer, "ended")
            self._outcomes().submit(outcomes)
            ended: dict[str, int] = {}
            for run, outcome in zip(runs, outcomes, strict=True):
                if outcome.state.finished:
                    ended[run.job.queue] = ended.get(run.job.queue, 0) + 1
            now = time.monotonic()
            for queue, count in ended.items():
                self._drained.record(queue, now, count)

    def _drop_lost(self, events: list[Event]) -> list[Event]:
        """The events without the ends of runs whose lease was lost (said already): their
        outcome could change nothing, another attempt owns the job now."""
        kept: list[Event] = []
        for event in events:
            key = (event.job.id, event.job.attempt)
            if key not in self._lost:
                kept.append(event)
            elif isinstance(event, Finished):
                self._lost.discard(key)
        return kept

    def _outcome(self, f: Finished) -> tuple[Finished, Outcome]:
        """The outcome of a run, and the run as it counts: a subscriber's success whose
        messages to publish are over the message limit is a failure of that run."""
        if f.ok:  # the retry policy decides only what follows a failure
            try:
                return f, self._routed(f.job, outcome_of(f, _DEFAULT_RETRY))
            except PayloadTooLarge as exc:
                error = error_entry(exc, with_traceback=False)
                f = replace(f, ok=False, result=None, error=error)
        options = self._options(f.job)
        return f, outcome_of(f, _DEFAULT_RETRY if options is None else options.retry)

    def _routed(self, job: Job, outcome: Outcome) -> Outcome:
        """A subscriber's success: its result out of the envelope its run returned, with
        the messages it publishes in the transaction recording it (`unwrap`)."""
        if outcome.state != JobState.SUCCEEDED or outcome.result is None:
            return outcome
        # By the task, not the groups served: a worker told to claim from a group's queue
        # it does not pump for still records its deliveries right.
        try:
            subscription = self._subscriptions[job.task]
        except KeyError:
            subscription = self._subscriptions[job.task] = (
                self.registry.get(job.task).subscription if job.task in self.registry else None
            )
        if subscription is None:
            return outcome
        key = job.args[0].get("key")
        result, messages = unwrap(outcome.result, key, subscription.publish_to)
        limit = self.message_limit
        for topic, _, value in messages:
            size = len(value.encode())
            if limit is not None and size > limit:  # as App.publish refuses it
                raise PayloadTooLarge(f"a message published to {topic!r}", size, limit)
        return replace(outcome, result=result, publish=messages)

    def _outcomes(self) -> OutcomeWriter:
        if self._writer is None:
            raise RuntimeError("the outcome writer starts with Worker.run")
        return self._writer

    @property
    def processed(self) -> int:
        """Outcomes this worker has recorded."""
        return 0 if self._writer is None else self._writer.written

    def _heartbeat(self, pool: ExecutorPool) -> None:
        """Renew every held lease in one statement; act on lost leases and cancel requests."""
        gone = self._lost
        running = self._held(pool.running())
        jobs = [
            job
            for job in (*self._held(self._buffer), *running)
            if (job.id, job.attempt) not in gone
        ]
        held = [Lease(job.id, job.attempt) for job in jobs]
        beat = self.backend.claims.heartbeat(
            HeartbeatParams(self.id, held, self.lease, self._now())
        )
        self._last_beat = time.monotonic()
        if beat.lost:
            lost = set(beat.lost)
            for job in jobs:
                if job.id in lost:
                    joblog.lease_lost(job.id, job, "while this worker held it")
            self._buffer = deque(job for job in self._buffer if job.id not in lost)
            taken = [job for job in running if job.id in lost]
            gone.update((job.id, job.attempt) for job in taken)
            if taken and self._middleware is not None:  # their ends are dropped: say it now
                self._middleware.lost(taken)
        if beat.cancel:
            cancel = set(beat.cancel)
            # A job of a batch call ends cancelled when its call ends; the call runs on.
            self._cancelled.update(
                job.id for jobs in self._calls.values() for job in jobs if job.id in cancel
            )
            unstarted = [job for job in self._buffer if job.id in cancel]
            self._buffer = deque(job for job in self._buffer if job.id not in cancel)
            self._collect(
                [
                    Finished(job, ok=False, error=CANCELLED_BEFORE_START, cancelled=True)
                    for job in unstarted
                ]
            )
            for job_id in cancel:
                pool.cancel(job_id)
        self.backend.workers.heartbeat(self.id, self._drained.rates(time.monotonic()))

    def _now(self) -> datetime | None:
        return None if self.clock is None else self.clock()

    def _rescue(self) -> int:
        """Put back jobs whose lease expired; return how many."""
        rescued = self.backend.claims.rescue(RescueParams(self._now()))
        if rescued:
            log.warning("rescued %d jobs whose lease expired: %s", len(rescued), rescued[:20])
        return len(rescued)

    def _rescue_duty(self) -> int:
        """`_rescue`, as the holder of the rescue duty: if it keeps failing, the duty is
        given up (`Elector.failed`), so a worker that renews its lease but cannot rescue
        (one shard unreachable) does not keep the duty from the others."""
        try:
            rescued = self._rescue()
        except Exception:
            if self.elector is not None:
                self.elector.failed()
            raise
        if self.elector is not None:
            self.elector.succeeded()
        return rescued

    def _resign(self) -> None:
        """Give up the rescue duty at the stop, so another worker takes it at once (during
        an outage, or if this fails, it expires by itself)."""
        if self.elector is None or self._outage.active:
            return
        try:
            self.elector.resign()
        except OffloadError as exc:
            log.warning("could not give up the rescue duty (it expires by itself): %s", exc)

    def _release(self, jobs: list[Job]) -> None:
        """Give jobs back to the queue (at a stop); during an outage, leave them to their
        leases' expiry."""
        if not jobs:
            return
        if not self._outage.active:
            leases = [Lease(job.id, job.attempt) for job in self._held(jobs)]
            try:
                self.backend.claims.release(ReleaseParams(self.id, leases))
                return
            except BackendUnavailable as exc:
                if not passing(exc):
                    raise
                self._outage.failed(exc)
        log.warning(
            "could not give back %d jobs: they run again once their leases expire", len(jobs)
        )

    # -- set-up -----------------------------------------------------------------------

    def _options(self, job: Job) -> TaskOptions | None:
        return task_options(self.registry, job)

    def _warn_unserved(self) -> None:
        """Say once, per queue, which registered tasks use a queue this worker does not
        serve: their jobs would wait here for ever, unseen, if no other worker serves it."""
        unserved: dict[str, list[str]] = {}
        for definition in self.registry.definitions():
            # A group left out (`groups`) is left out on purpose: its members are elsewhere.
            if definition.options.queue not in self.queues and definition.subscription is None:
                unserved.setdefault(definition.options.queue, []).append(definition.name)
        for queue, names in sorted(unserved.items()):
            shown = ", ".join(names[:_NAMES_SHOWN])
            if len(names) > _NAMES_SHOWN:
                shown += f" and {len(names) - _NAMES_SHOWN} more"
            log.warning(
                "tasks %s use queue %r, which this worker does not serve: add -q %s",
                shown,
                queue,
                queue,
            )

    def _make_pool(self) -> ExecutorPool:
        pool = build_pool(self.pool_spec)
        pool.on_start = self._started
        return pool

    def _started(self, jobs: list[Job]) -> None:
        """Tell the observers of jobs started: a batch call's own jobs, not its stand-in."""
        held = self._held(jobs)
        for observer in self._observers:
            try:
                observer.started(held)
            except Exception:  # an observer's failure must not stop the jobs
                self._hook_errors.failed(observer, "started")

    def _install_signals(self) -> dict[int, Any]:
        return install_handlers(self._on_signal) if self.install_signals else {}

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        restore_handlers(previous)


#: Seconds a worker waits at least for a rate limit's next start: a wait that rounds to
#: nothing must not make a zero-timeout turn.
_MIN_WAIT = 0.005
#: Task names the unserved-queue warning lists per queue, at most.
_NAMES_SHOWN = 10
#: Seconds a stopping worker gives its last outcomes to be written, at least.
_ABORT_WRITE_TIMEOUT = 5.0
#: Seconds past its grace period by which a worker stopping during an outage has exited.
_LAST_TRY = 2.0


def _close_quietly(listener: Listener) -> None:
    """Close a wake-up channel that may be broken already."""
    try:
        listener.close()
    except Exception:  # a lost connection may fail to close; it is gone either way
        log.debug("error closing the wake-up channel", exc_info=True)
