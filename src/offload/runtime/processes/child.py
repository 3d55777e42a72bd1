"""The child's side of the process executor: run the jobs the worker sends until the pipe ends.

A child is forked by the fork server (see `executor.start_fork_server`) with the app already
imported. It runs its jobs one at a time, in the order they came, each under its task's CPU
and memory limits; timeouts and cancels of a running job end the child from outside.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

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


def main(app_path: str, conn: Connection, result_limit: int | None, worker_pid: int) -> None:
    """Body of a child process: run the jobs the worker sends, in order, until EOF.

    The worker may queue several short jobs ahead; before each job the child reads every
    waiting message, so a cancel of a queued job arrives before that job would start.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when children stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_watch_worker, args=(worker_pid,), daemon=True).start()
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
                        reply(Done(message.job_id, False, stopped, False, True))
                if queued and not frames.ready():
                    break
                if not frames.fill():
                    return  # the worker closed the pipe, or died: leases rerun the jobs
            run = queued.pop(next(iter(queued)))
            reply(Done.of(run.job_id, _run(run, registry, reply, result_limit)))
    except OSError:  # the worker closed the pipe, or died: leases rerun the jobs
        return


def _run(
    run: Run, registry: Registry, reply: Callable[[Message], None], result_limit: int | None
) -> Outcome:
    """Run one job under its task's limits; its progress reports go out as they come."""
    definition = lookup(registry, run.task)

    def report(fraction: float, message: str | None) -> None:
        reply(Report(run.job_id, fraction, message))

    ctx = JobContext(run.job_id, run.attempt, run.queue, run.task, report)
    with limits.applied(definition.options if isinstance(definition, TaskDef) else None):
        return run_call(definition, run.args, run.kwargs, ctx, result_limit)


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
