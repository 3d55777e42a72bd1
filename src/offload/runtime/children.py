"""The process executor: one child process per slot, started from a fork server.

A crash, a hang or a memory blow-up costs one child, never the worker; CPU and memory limits
are applied in the child around each run, timeouts and cancels end the child from outside.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import multiprocessing.context
import os
import resource
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import orjson

from offload.core.job import Job
from offload.core.options import TaskOptions
from offload.core.task import Registry, TaskDef
from offload.runtime.context import JobContext
from offload.runtime.executor import Event, Finished, Progress
from offload.runtime.loader import load_app
from offload.runtime.pipes import Frames
from offload.runtime.running import finished_from, limit_error, lookup, run_call, stopped


def _child_main(app_path: str, conn: Connection, result_limit: int | None, worker_pid: int) -> None:
    """Body of a child process: run the jobs the worker sends, in order, until EOF.

    The worker may queue several short jobs ahead; before each job the child reads every
    waiting message, so a cancel of a queued job arrives before that job would start.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when children stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_watch_worker, args=(worker_pid,), daemon=True).start()
    registry: Registry = load_app(app_path).registry
    queued: dict[int, list[Any]] = {}
    frames = Frames(conn.fileno())
    sending = threading.Lock()  # a task may report progress from a thread of its own

    def send(message: list[Any]) -> None:
        data = orjson.dumps(message)
        with sending:
            conn.send_bytes(data)

    try:
        while True:
            # Take every waiting message (a cancel may name a queued job); block only while
            # nothing is queued.
            while True:
                for raw in frames.messages():
                    kind, job_id, *rest = orjson.loads(raw)
                    if kind == "run":
                        queued[job_id] = rest
                    elif queued.pop(job_id, None) is not None:  # a cancel of a queued job
                        stopped = limit_error("JobCancelled", "cancelled before it started")
                        send(["done", job_id, False, stopped, False, True])
                if queued and not frames.ready():
                    break
                if not frames.fill():
                    return  # the worker closed the pipe, or died: leases rerun the jobs
            job_id = next(iter(queued))
            attempt, queue_name, task, args, kwargs = queued.pop(job_id)
            definition = lookup(registry, task)

            def report(fraction: float, message: str | None, job_id: int = job_id) -> None:
                send(["progress", job_id, fraction, message])

            ctx = JobContext(job_id, attempt, queue_name, task, report)
            limits = definition.options if isinstance(definition, TaskDef) else None
            with _rlimits(limits):
                outcome = run_call(definition, args, kwargs, ctx, result_limit)
            send(["done", job_id, *outcome])
    except (EOFError, OSError):  # the worker closed the pipe, or died: leases rerun the jobs
        return


def _watch_worker(worker_pid: int) -> None:
    """End this child soon after its worker dies: the worker's jobs are rerun elsewhere
    once their leases expire, so they must not go on running here meanwhile."""
    while True:
        time.sleep(WATCH_INTERVAL)
        try:
            os.kill(worker_pid, 0)
            with open(f"/proc/{worker_pid}/stat") as stat:
                gone = stat.read().rpartition(")")[2].split()[0] in ("Z", "X")
        except (ProcessLookupError, FileNotFoundError):
            gone = True
        except OSError:
            gone = False  # no /proc here, or no right to ask: keep running
        if gone:
            os._exit(1)


#: How often a child checks that its worker is alive (seconds).
WATCH_INTERVAL = 0.2


@contextlib.contextmanager
def _rlimits(options: TaskOptions | None) -> Any:
    """Apply a task's CPU and memory limits to this child for one run, then lift them."""
    if options is None or not options.has_process_limits:
        yield
        return
    saved = []
    if options.cpu_seconds is not None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = usage.ru_utime + usage.ru_stime
        saved.append((resource.RLIMIT_CPU, resource.getrlimit(resource.RLIMIT_CPU)))
        soft = math.ceil(used + options.cpu_seconds)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
    if options.memory_mb is not None:
        saved.append((resource.RLIMIT_AS, resource.getrlimit(resource.RLIMIT_AS)))
        soft = _address_space() + int(options.memory_mb * MIB)
        resource.setrlimit(resource.RLIMIT_AS, (soft, resource.RLIM_INFINITY))
    try:
        yield
    finally:
        for kind, previous in saved:
            resource.setrlimit(kind, previous)


MIB = 1024 * 1024


def _rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, IndexError, ValueError):
        return 0.0


def _address_space() -> int:
    """This process's virtual memory size in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _frame(message: bytes) -> bytes:
    """`message` as Connection.send_bytes frames it: its length, then itself."""
    size = len(message)
    if size > 0x7FFFFFFF:
        return (-1).to_bytes(4, "big", signed=True) + size.to_bytes(8, "big") + message
    return size.to_bytes(4, "big", signed=True) + message


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _run_message(job: Job) -> bytes:
    """What a child needs to run a job."""
    return orjson.dumps(["run", job.id, job.attempt, job.queue, job.task, job.args, job.kwargs])


#: Jobs a child may hold at once (one running, the rest queued) while jobs are short.
PIPELINE_DEPTH = 32
#: Runs shorter than this on average (seconds) count as short.
SHORT_RUN = 0.002
#: Bytes of job messages a busy child may hold: a busy child reads its pipe only between
#: jobs, and a worker blocked writing to a full pipe while that child writes a large result
#: would wait on each other. Well under a pipe's 64 KiB, so such a write never blocks; a
#: larger job waits for an idle child.
PIPE_BUDGET = 16 * 1024


def start_fork_server(app_path: str) -> None:
    """Boot the fork server now: it imports the app while the caller does the same, so a
    worker's first children need not wait for it."""
    _fork_server_context(app_path)
    forkserver.ensure_running()


def _fork_server_context(app_path: str) -> multiprocessing.context.ForkServerContext:
    ctx = multiprocessing.get_context("forkserver")
    # The app and this module: children start with both imported, by the fork server.
    ctx.set_forkserver_preload([app_path.partition(":")[0], __name__])
    return ctx


@dataclass(slots=True)
class _Slot:
    process: BaseProcess
    conn: Connection
    #: Jobs sent to the child, in order: the first is running, the others wait in the child.
    jobs: deque[Job] = field(default_factory=deque)
    #: The size of each held job's message, by job id, and their sum (see PIPE_BUDGET).
    sizes: dict[int, int] = field(default_factory=dict)
    held: int = 0
    #: When the first job started (approximately: when its predecessor's result came).
    since: float = 0.0
    deadline: float | None = None
    jobs_done: int = 0
    #: Set once the child is worn out: it takes no more jobs and is replaced when idle.
    retire: bool = False
    kill_head: bool = False
    #: What the child sent, read many messages per system call.
    frames: Frames = field(init=False)
    #: Readable once the child has ended.
    ended: select.poll = field(init=False)

    def __post_init__(self) -> None:
        self.frames = Frames(self.conn.fileno())
        self.ended = select.poll()
        self.ended.register(self.process.sentinel, select.POLLIN)

    def exited(self) -> bool:
        """The child has ended (its sentinel turned readable): one system call, where
        `Process.is_alive` builds and tears down a selector on every call."""
        return bool(self.ended.poll(0))

    def takes(self, size: int, depth: int) -> bool:
        """Room for one more job whose message is `size` bytes: an idle child takes any;
        a busy one while it holds fewer than `depth` jobs and the bytes fit PIPE_BUDGET."""
        if self.retire:
            return False
        if not self.jobs:
            return True
        return len(self.jobs) < depth and self.held + size <= PIPE_BUDGET

    def hold(self, job: Job, size: int) -> None:
        self.jobs.append(job)
        self.sizes[job.id] = size
        self.held += size

    def release(self, job: Job) -> None:
        """Forget a job that ended or was taken away from the child."""
        self.jobs.remove(job)
        self.held -= self.sizes.pop(job.id, 0)

    def release_head(self) -> Job:
        job = self.jobs.popleft()
        self.held -= self.sizes.pop(job.id, 0)
        return job

    def release_all(self) -> None:
        self.jobs.clear()
        self.sizes.clear()
        self.held = 0


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
    _slots: list[_Slot] = field(default_factory=list)
    #: Moving average of how long runs take, to decide whether to queue jobs in children.
    _run_time: float = 1.0
    #: Jobs (with their messages) waiting for a child with room (see PIPE_BUDGET).
    _waiting: deque[tuple[Job, bytes]] = field(default_factory=deque)
    _events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ctx = _fork_server_context(self.app_path)
        self._slots = [self._spawn() for _ in range(self.concurrency)]

    def _spawn(self) -> _Slot:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_child_main,
            args=(self.app_path, child, self.result_limit, os.getpid()),
            name="offload-child",
            daemon=True,
        )
        process.start()
        child.close()
        return _Slot(process, parent)

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

    def _depth(self) -> int:
        return PIPELINE_DEPTH if self._run_time < SHORT_RUN else 1

    def capacity(self) -> int:
        return self._depth() * self.concurrency

    def free(self) -> int:
        depth = self._depth()
        room = sum(max(depth - len(slot.jobs), 0) for slot in self._slots if not slot.retire)
        return max(room - len(self._waiting), 0)

    def _send(self, slot: _Slot, job: Job) -> None:
        """Hand one job to a child (an idle one, or a new one taking over jobs)."""
        message = _run_message(job)
        self._hold(slot, job, len(message))
        slot.conn.send_bytes(message)

    def _hold(self, slot: _Slot, job: Job, size: int) -> None:
        if not slot.jobs:
            self._start_head(slot, job, time.monotonic())
        slot.hold(job, size)

    def _start_head(self, slot: _Slot, job: Job, now: float) -> None:
        options = self.options_of(job)
        timeout = None if options is None else options.timeout
        slot.since = now
        slot.deadline = None if timeout is None else now + timeout

    def submit(self, jobs: list[Job]) -> None:
        self._waiting.extend((job, _run_message(job)) for job in jobs)
        self._place()

    def _place(self) -> None:
        """Hand waiting jobs, in order, each to the least busy child with room for it, one
        write per child. Stop at the first job that fits nowhere (a large one waits for an
        idle child, see PIPE_BUDGET), so that jobs start in the order they were claimed."""
        depth = self._depth()
        out: dict[int, bytearray] = {}
        was_idle: set[int] = set()
        while self._waiting:
            job, message = self._waiting[0]
            size = len(message)
            fits = [i for i, slot in enumerate(self._slots) if slot.takes(size, depth)]
            if not fits:
                break
            index = min(fits, key=lambda i: len(self._slots[i].jobs))
            self._waiting.popleft()
            slot = self._slots[index]
            if not slot.jobs:
                was_idle.add(index)
            self._hold(slot, job, size)
            out.setdefault(index, bytearray()).extend(_frame(message))
        for index, data in out.items():
            try:
                _write_all(self._slots[index].conn.fileno(), data)
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

    def _worn_out(self, slot: _Slot) -> bool:
        """True when a child ran its quota of jobs or grew past its memory cap: it gets no
        more jobs and is replaced once idle."""
        if self.max_jobs_per_child and slot.jobs_done >= self.max_jobs_per_child:
            return True
        if self.max_child_memory_mb is None or slot.process.pid is None:
            return False
        return _rss_mb(slot.process.pid) > self.max_child_memory_mb

    def _check(self, slot: _Slot) -> Finished | None:
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

    def _died(self, slot: _Slot) -> Finished:
        """The end of the job a child was running when it died: a CPU limit, or a crash."""
        slot.process.join(1)
        job, code = slot.release_head(), slot.process.exitcode
        if code == -signal.SIGXCPU:
            cpu = getattr(self.options_of(job), "cpu_seconds", 0)
            return stopped(job, "CpuLimitExceeded", f"exceeded cpu_seconds={cpu:g}")
        return stopped(job, "WorkerLost", f"the child process running it died (exit code {code})")

    def _read(self, slot: _Slot, events: list[Event]) -> bool:
        """Take every waiting message of a child; False if its pipe broke (it died)."""
        try:
            while slot.frames.ready():
                if not slot.frames.fill():
                    return False
                for raw in slot.frames.messages():
                    self._take(slot, orjson.loads(raw), events)
        except OSError:
            return False
        return True

    def _take(self, slot: _Slot, message: list[Any], events: list[Event]) -> None:
        """Act on one message of a child: a progress report or a job's end."""
        kind, job_id = message[0], message[1]
        job = next((j for j in slot.jobs if j.id == job_id), None)
        if job is None:
            return
        if kind == "progress":
            events.append(Progress(job, message[2], message[3]))
            return
        _, _, ok, payload, permanent, cancelled = message
        events.append(finished_from(job, (ok, payload, permanent, cancelled)))
        was_head = job is slot.jobs[0]
        slot.release(job)
        if was_head:
            now = time.monotonic()
            self._run_time = 0.8 * self._run_time + 0.2 * (now - slot.since)
            slot.jobs_done += 1
            slot.kill_head = False
            slot.retire = self._worn_out(slot)
            if slot.jobs:
                self._start_head(slot, slot.jobs[0], now)

    def waitables(self) -> list[int]:
        # Idle children too: a sentinel that turns readable means a child died.
        return [fd for slot in self._slots for fd in (slot.conn.fileno(), slot.process.sentinel)]

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
                        slot.conn.send_bytes(orjson.dumps(["cancel", job_id]))

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
