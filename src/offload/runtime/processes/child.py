"""The child's side of the process executor: run the jobs the worker sends until the pipe ends.

A child is forked by the fork server (see `executor.start_fork_server`) with the app already
imported. It runs its jobs one at a time, in the order they came, each under its task's CPU
and memory limits; timeouts and cancels of a running job end the child from outside.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from typing import Any

from offload.core.task import Registry, TaskDef
from offload.runtime.context import JobContext
from offload.runtime.loader import load_app
from offload.runtime.processes import limits
from offload.runtime.processes.protocol import (
    Cancel,
    Done,
    Frames,
    Message,
    Report,
    Run,
    encode,
    send,
)
from offload.runtime.running import Outcome, limit_error, lookup, run_call


def main(app_path: str, conn: Connection, result_limit: int | None) -> None:
    """Body of a child process: run the jobs the worker sends, in order, until EOF.

    The worker may queue several short jobs ahead; before each job the child reads every
    waiting message, so a cancel of a queued job arrives before that job would start.
    """
    end_with_worker()
    # The worker decides when children stop (with SIGKILL): a SIGINT or SIGTERM sent to its
    # whole process group (Ctrl-C, systemd's default KillMode) must not end their jobs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    registry: Registry = load_app(app_path).registry
    queued: dict[int, Run] = {}
    fd = conn.fileno()  # `conn` stays referenced (and so open) while this function runs
    frames = Frames(fd)
    sending = threading.Lock()  # a task may report progress from a thread of its own

    def reply(message: Message) -> None:
        data = encode(message)
        with sending:
            send(fd, data)

    try:
        while True:
            # Take every waiting message (a cancel may name a queued job); block only while
            # nothing is queued.
            while True:
                for message in frames.messages():
                    if isinstance(message, Run):
                        queued[message.job_id] = message
                    elif isinstance(message, Cancel) and message.job_id in queued:
                        del queued[message.job_id]
                        stopped = limit_error("JobCancelled", "cancelled before it started")
                        reply(Done(message.job_id, False, stopped, False, True, None))
                if queued and not frames.ready():
                    break
                if not frames.fill():
                    return  # the worker closed the pipe, or died: leases rerun the jobs
            run = queued.pop(next(iter(queued)))
            began = time.perf_counter()
            # A running job is cancelled by ending the child, so nothing here sets its cancel
            # event; each job still gets its own, since a thread the task left behind may set
            # it after the job has ended.
            outcome = _run(run, registry, reply, result_limit, threading.Event())
            reply(Done.of(run.job_id, outcome, time.perf_counter() - began))
    except OSError:  # the worker closed the pipe, or died: leases rerun the jobs
        return


def _run(
    run: Run,
    registry: Registry,
    reply: Callable[[Message], None],
    result_limit: int | None,
    cancel_event: threading.Event,
) -> Outcome:
    """Run one job under its task's limits; its progress reports go out as they come."""
    definition = lookup(registry, run.task)

    def report(fraction: float, message: str | None) -> None:
        reply(Report(run.job_id, fraction, message))

    ctx = JobContext(
        run.job_id, run.attempt, run.queue, run.task, report, cancel_event, run.outcomes()
    )
    options = definition.options if isinstance(definition, TaskDef) else None
    if options is None or not options.has_process_limits:  # most tasks: nothing to apply
        return run_call(definition, run.args, run.kwargs, ctx, result_limit)
    with limits.applied(options):
        return run_call(definition, run.args, run.kwargs, ctx, result_limit)


def end_with_worker() -> None:
    """Have the kernel SIGKILL this child as soon as its worker dies (on Linux).

    A dead worker's jobs are rerun elsewhere once their leases expire, so they must not go
    on running here meanwhile. This child's parent is the fork server, which exits once
    every holder of its lifeline (the write end of a pipe it waits on for EOF) has: the
    worker, and each child until it drops its copy here. The death signal is asked for
    first, so the fork server cannot have exited for want of this child's copy before; the
    check of the parent covers one ended otherwise. Elsewhere a child ends once its current
    job does, at its next read from or write to the dead worker's pipe.
    """
    parent = os.getppid()
    if _set_parent_death_signal(signal.SIGKILL) and os.getppid() != parent:
        os._exit(1)  # the parent ended before the kernel was asked to tell us
    _drop_fork_server_lifeline()


#: prctl(2) option: the signal this process gets when its parent ends.
_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal(signum: int) -> bool:
    """Ask Linux to send `signum` to this process when its parent ends; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return bool(prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signum), 0, 0, 0) == 0)


def _drop_fork_server_lifeline() -> None:
    """Close this child's copy of the write end the fork server watches for EOF.

    multiprocessing hands every child of the fork server that descriptor (so that a child
    could use the same server); while any child holds it, a dead worker's fork server, and
    so its children, would live on. Children never start processes through it: one that
    wants a fork server gets a new one (`ForkServer.ensure_running` sees no server pid).
    """
    server: Any = forkserver._forkserver  # its attributes are not in the type stubs
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        os.close(fd)
        server._forkserver_alive_fd = None
