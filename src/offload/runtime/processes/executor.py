"""The process executor: one child process per slot, started from a fork server.

A crash, a hang or a memory blow-up costs one child, never the worker; CPU and memory limits
are applied in the child around each run (`child`), timeouts and cancels end the child from
outside (here). While jobs are short, each child holds a few queued jobs so that the worker's
loop handles many results per turn.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.context
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import forkserver

from offload.core.job import Job
from offload.core.options import TaskOptions
from offload.runtime.executor import Event, Finished, Pace, Progress
from offload.runtime.processes import child, limits
from offload.runtime.processes.protocol import (
    Cancel,
    Done,
    Message,
    Report,
    encode,
    encode_run,
    send,
)
from offload.runtime.processes.slot import Slot
from offload.runtime.running import finished_from, stopped

#: Imported by the fork server only, by name (importing it here would ignore SIGTERM here).
SERVER_MODULE = "offload.runtime.processes.server"


def start_fork_server(app_path: str) -> None:
    """Boot the fork server now: it imports the app while the caller does the same, so a
    worker's first children need not wait for it."""
    _fork_server_context(app_path)
    forkserver.ensure_running()


def _fork_server_context(app_path: str) -> multiprocessing.context.ForkServerContext:
    ctx = multiprocessing.get_context("forkserver")
    # The app and the child's code: children start with both imported, by the fork server.
    # `server` comes first: the fork server ignores SIGTERM from then on (see there).
    ctx.set_forkserver_preload([SERVER_MODULE, app_path.partition(":")[0], child.__name__])
    return ctx


@dataclass
class ProcessExecutor:
    """One child process per slot, started from a fork server that preloads the app.

    While jobs are short, each child holds a few queued jobs so that the worker's loop
    handles many results per turn; limits and timeouts apply to the job a child is running.
    """

    app_path: str
    concurrency: int
    options_of: Callable[[Job], TaskOptions | None]
    result_limit: int | None = None
    #: Replace a child after this many jobs (None: never), as max-tasks-per-child does.
    max_jobs_per_child: int | None = None
    #: Replace a child whose resident memory grew past this many MiB (None: never).
    max_child_memory_mb: float | None = None
    _slots: list[Slot] = field(default_factory=list)
    #: How long runs take, to decide whether to queue jobs in children.
    _pace: Pace = field(default_factory=Pace)
    #: Jobs (with their messages) waiting for a child with room (see slot.PIPE_BUDGET).
    _waiting: deque[tuple[Job, bytes]] = field(default_factory=deque)
    _events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ctx = _fork_server_context(self.app_path)
        self._slots = [self._spawn() for _ in range(self.concurrency)]

    def _spawn(self) -> Slot:
        ours, theirs = self._ctx.Pipe()
        process = self._ctx.Process(
            target=child.main,
            args=(self.app_path, theirs, self.result_limit),
            name="offload-child",
            daemon=True,
        )
        process.start()
        theirs.close()
        return Slot(process, ours)

    def _replace(self, index: int) -> None:
        """Start a new child in this slot and hand it the jobs the old one had not started."""
        old = self._slots[index]
        if old.process.is_alive():
            old.process.kill()
        old.process.join(5)
        old.conn.close()
        self._slots[index] = slot = self._spawn()
        for job in old.jobs:
            self._send(slot, job)

    def capacity(self) -> int:
        return self._pace.depth() * self.concurrency

    def free(self) -> int:
        depth = self._pace.depth()
        room = sum(max(depth - len(slot.jobs), 0) for slot in self._slots if not slot.retire)
        return max(room - len(self._waiting), 0)

    def _send(self, slot: Slot, job: Job) -> None:
        """Hand one job to a child (an idle one, or a new one taking over jobs)."""
        data = encode_run(job)
        self._hold(slot, job, len(data))
        send(slot.fd, data)

    def _hold(self, slot: Slot, job: Job, size: int) -> None:
        if not slot.jobs:
            self._start_head(slot, job, time.monotonic())
        slot.hold(job, size)

    def _start_head(self, slot: Slot, job: Job, now: float) -> None:
        options = self.options_of(job)
        timeout = None if options is None else options.timeout
        slot.since = now
        slot.deadline = None if timeout is None else now + timeout

    def submit(self, jobs: list[Job]) -> None:
        self._waiting.extend((job, encode_run(job)) for job in jobs)
        self._place()

    def _place(self) -> None:
        """Hand waiting jobs, in order, each to the least busy child with room for it, one
        write per child. Stop at the first job that fits nowhere (a large one waits for an
        idle child, see slot.PIPE_BUDGET), so that jobs start in the order they were claimed."""
        depth = self._pace.depth()
        out: dict[int, bytearray] = {}
        was_idle: set[int] = set()
        slots = list(enumerate(self._slots))
        while self._waiting:
            job, data = self._waiting[0]
            size = len(data)
            index, least = -1, 0
            for i, slot in slots:  # the first of the least busy that takes it
                if (index < 0 or len(slot.jobs) < least) and slot.takes(size, depth):
                    index, least = i, len(slot.jobs)
            if index < 0:
                break
            self._waiting.popleft()
            slot = self._slots[index]
            if not slot.jobs:
                was_idle.add(index)
            self._hold(slot, job, size)
            out.setdefault(index, bytearray()).extend(data)
        for index, batch in out.items():
            try:
                send(self._slots[index].fd, batch)
            except OSError:  # the child died
                if index in was_idle:  # none of its jobs started: they go to a new child
                    self._replace(index)
                # else `poll` reports the job it was running and hands the rest on

    def poll(self) -> list[Event]:
        events, self._events = self._events, []
        for index, slot in enumerate(self._slots):
            if not slot.jobs:
                if slot.exited():
                    self._replace(index)
                continue
            if self._read(slot, events):
                ended = self._check(slot)
            elif slot.jobs:
                ended = self._died(slot)
            else:  # it died right after its last result
                self._replace(index)
                continue
            if ended is not None:
                events.append(ended)
                self._replace(index)
            elif slot.retire and not slot.jobs:
                self._replace(index)
        self._place()
        return events

    def _worn_out(self, slot: Slot) -> bool:
        """True when a child ran its quota of jobs or grew past its memory cap: it gets no
        more jobs and is replaced once idle."""
        if self.max_jobs_per_child and slot.jobs_done >= self.max_jobs_per_child:
            return True
        if self.max_child_memory_mb is None or slot.process.pid is None:
            return False
        return limits.rss_mb(slot.process.pid) > self.max_child_memory_mb

    def _check(self, slot: Slot) -> Finished | None:
        """The running job's end if it must be stopped: cancelled, timed out or crashed."""
        if not slot.jobs:
            return None
        if slot.kill_head:
            return stopped(slot.release_head(), "JobCancelled", "cancelled while running", True)
        if slot.deadline is not None and time.monotonic() >= slot.deadline:
            head = slot.release_head()
            timeout = getattr(self.options_of(head), "timeout", 0)
            return stopped(head, "JobTimeout", f"exceeded timeout={timeout:g}s")
        if slot.exited():
            return self._died(slot)
        return None

    def _died(self, slot: Slot) -> Finished:
        """The end of the job a child was running when it died: a CPU limit, or a crash."""
        slot.process.join(1)
        job, code = slot.release_head(), slot.process.exitcode
        if code == -signal.SIGXCPU:
            cpu = getattr(self.options_of(job), "cpu_seconds", 0)
            return stopped(job, "CpuLimitExceeded", f"exceeded cpu_seconds={cpu:g}")
        return stopped(job, "WorkerLost", f"the child process running it died (exit code {code})")

    def _read(self, slot: Slot, events: list[Event]) -> bool:
        """Take every waiting message of a child; False if its pipe broke (it died)."""
        try:
            while slot.frames.ready():
                if not slot.frames.fill():
                    return False
                for message in slot.frames.messages():
                    self._take(slot, message, events)
        except OSError:
            return False
        return True

    def _take(self, slot: Slot, message: Message, events: list[Event]) -> None:
        """Act on one message of a child: a progress report or a job's end."""
        jobs = slot.jobs
        if jobs and jobs[0].id == message.job_id:  # children answer in order: nearly always
            job = jobs[0]
        else:
            found = next((j for j in jobs if j.id == message.job_id), None)
            if found is None:
                return
            job = found
        if isinstance(message, Report):
            events.append(Progress(job, message.fraction, message.message))
            return
        if not isinstance(message, Done):
            return  # a child sends no other kind
        events.append(finished_from(job, message.outcome, message.duration))
        if job is not jobs[0]:  # a queued job the child dropped, cancelled
            slot.release(job)
            return
        slot.release_head()
        now = time.monotonic()
        self._pace.record(now - slot.since)
        slot.jobs_done += 1
        slot.kill_head = False
        slot.retire = self._worn_out(slot)
        if jobs:
            self._start_head(slot, jobs[0], now)

    def waitables(self) -> list[int]:
        # Idle children too: a sentinel that turns readable means a child died.
        return [fd for slot in self._slots for fd in (slot.fd, slot.process.sentinel)]

    def running(self) -> list[Job]:
        return [job for slot in self._slots for job in slot.jobs] + [j for j, _ in self._waiting]

    def cancel(self, job_id: int) -> None:
        for entry in list(self._waiting):
            if entry[0].id == job_id:
                self._waiting.remove(entry)
                self._events.append(
                    stopped(entry[0], "JobCancelled", "cancelled before it started", True)
                )
        for slot in self._slots:
            for position, job in enumerate(slot.jobs):
                if job.id != job_id:
                    continue
                if position == 0:
                    slot.kill_head = True
                else:  # still queued in the child: it drops the job and says so
                    with contextlib.suppress(OSError):
                        send(slot.fd, encode(Cancel(job_id)))

    def next_deadline(self) -> float | None:
        if self._events or any(slot.kill_head for slot in self._slots):
            return time.monotonic()
        deadlines = [slot.deadline for slot in self._slots if slot.jobs and slot.deadline]
        return min(deadlines) if deadlines else None

    def stop_all(self) -> list[Job]:
        stopped = self.running()
        self._waiting.clear()
        for index, slot in enumerate(self._slots):
            if slot.jobs:
                slot.release_all()
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
