"""`Harness`: an App's jobs run in the test's own process, on throwaway storage.

The harness points an App at a fresh database (a temporary SQLite file unless a URL is
given) for the length of a test, and puts it back afterwards. Jobs are stored by the App's
own enqueue and run by a real `Worker` in burst mode on threads, so arguments go through
the JSON round trip and every rule of the database holds as in production: nothing of the
worker is copied here.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar, overload

from offload.app import App
from offload.backends import open_backend
from offload.backends.params import Inserted, Outcome, WorkflowInserted, WorkflowInsertParams
from offload.core import serialization
from offload.core.errors import ConfigurationError, JobFailed, _did_you_mean, shorten
from offload.core.job import Job, JobSpec, Payload
from offload.core.states import JobState
from offload.core.task import TaskDef
from offload.runtime.context import JobContext, Running
from offload.runtime.executor import Finished
from offload.task import Task

P = ParamSpec("P")
R = TypeVar("R")

Mode = Literal["manual", "inline"]
MODES: tuple[Mode, ...] = ("manual", "inline")
#: States of a job enqueued and not run to its end yet (waiting for its time, its parents
#: or its retry's backoff): what `assert_enqueued` looks at.
ENQUEUED = (JobState.AVAILABLE, JobState.SCHEDULED, JobState.WAITING, JobState.RETRYING)
#: Jobs read per listing when asserting (a test's jobs are read page after page, all of
#: them): big enough that a page is one query for most tests.
_PAGE = 1000


class InlineTransaction(ConfigurationError):
    """Inline mode was given an enqueue of `task` on the caller's connection (`conn=`): the
    job would exist only at that transaction's commit, which the harness cannot see, so it
    could not run it at the enqueue (and a `result()` would wait for ever). Nothing was
    stored."""

    def __init__(self, task: str) -> None:
        self.task = task
        super().__init__(
            f"inline mode cannot run the job of {task!r} enqueued with conn=: it is stored "
            "when your transaction commits, which the harness does not see; use "
            "mode='manual' and call drain() after the commit"
        )


@dataclass
class Drained:
    """What one `drain` ran: runs that succeeded, failed (retrying or dead after it) and
    were cancelled, and the jobs of the failed ones."""

    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    @property
    def ran(self) -> int:
        """Runs in all."""
        return self.succeeded + self.failed + self.cancelled


class _Tally:
    """The worker's observer during a drain: counts how each run ended."""

    def __init__(self, drained: Drained) -> None:
        self.drained = drained

    def started(self, jobs: Sequence[Job]) -> None:
        pass

    def ended(self, runs: Sequence[Finished], outcomes: Sequence[Outcome]) -> None:
        for run in runs:
            if run.ok:
                self.drained.succeeded += 1
            elif run.cancelled:
                self.drained.cancelled += 1
            else:
                self.drained.failed += 1
                self.drained.failures.append((run.job.id, run.error or {}))


def check_mode(mode: object) -> Mode:
    """`mode` if it is one of MODES, else a ConfigurationError naming it."""
    for known in MODES:
        if mode == known:
            return known
    hint = _did_you_mean(mode, list(MODES), "modes") if isinstance(mode, str) else ""
    raise ConfigurationError(f"unknown testing mode {shorten(mode)}{hint}")


class Harness:
    """An App under test: see `offload.testing.harness`. Methods read and run the jobs of
    the harness's storage only."""

    def __init__(self, app: App, mode: Mode) -> None:
        self.app = app
        self.mode = mode
        #: True while a drain runs: an enqueue from a job stores only (inline mode), and
        #: the drain under way picks it up.
        self._draining = threading.Event()

    # -- asserting ---------------------------------------------------------------------

    def all_enqueued(
        self, task: Task[..., Any] | str | None = None, *, queue: str | None = None
    ) -> list[Job]:
        """Every job enqueued and not run to its end yet (available, scheduled, waiting,
        or retrying after a failed run), oldest first, of `task` and `queue` when given."""
        name = None if task is None else self._definition(task).name
        found: list[Job] = []
        for state in ENQUEUED:
            before_id = None
            while True:
                page = self.app.jobs(
                    task=name, queue=queue, state=state, before_id=before_id, limit=_PAGE
                )
                found += page
                if len(page) < _PAGE:
                    break
                before_id = page[-1].id
        return sorted(found, key=lambda job: job.id)

    def assert_enqueued(
        self,
        task: Task[..., Any] | str,
        *,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
    ) -> Job:
        """Assert a job of `task` is enqueued with these arguments (compared as JSON, as
        the worker would get them), queue and priority (each checked only when given);
        return it. The AssertionError lists the jobs of the task that are enqueued."""
        name = self._definition(task).name
        want = _expected(args, kwargs, queue, priority)
        jobs = self.all_enqueued(name)
        for job in jobs:
            if _matches(job, want):
                return job
        raise AssertionError(
            f"no enqueued job of task {name!r} with {_describe(want)}; " + _found(name, jobs)
        )

    def refute_enqueued(
        self,
        task: Task[..., Any] | str,
        *,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
    ) -> None:
        """Assert no job of `task` matching what is given is enqueued."""
        name = self._definition(task).name
        want = _expected(args, kwargs, queue, priority)
        hits = [job for job in self.all_enqueued(name) if _matches(job, want)]
        if hits:
            shown = "; ".join(_line(job) for job in hits)
            raise AssertionError(
                f"expected no enqueued job of task {name!r} with {_describe(want)}, "
                f"found {len(hits)}: {shown}"
            )

    # -- running -------------------------------------------------------------------------

    @overload
    def perform_job(self, task: Task[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def perform_job(self, task: str, /, *args: Any, **kwargs: Any) -> Any: ...

    def perform_job(self, task: Task[Any, Any] | str, /, *args: Any, **kwargs: Any) -> Any:
        """Run one call of `task` here and now, as a worker would: the arguments are checked
        and encoded as an enqueue does, decoded, passed to the task inside a job context
        (`current_job()` works, its id is 0), and the result goes through JSON too. Stores
        nothing; the task's exception propagates as it is."""
        definition = self._definition(task)
        given, named = definition.prepare(args, kwargs)
        args_text, kwargs_text = serialization.dumps_args(
            tuple(given), named, limit=self.app.payload_limit
        )
        definition.check_args(given, named)
        ctx = JobContext(0, 1, definition.options.queue, definition.name, _no_progress)
        with Running(ctx):
            value = definition.target(
                *serialization.loads(args_text), **serialization.loads(kwargs_text)
            )
            if inspect.isawaitable(value):
                value = asyncio.run(_await(value))
        return serialization.loads(serialization.dumps(value, "the task's result", None))

    def drain(self, queue: str | None = None, *, raise_errors: bool = True) -> Drained:
        """Run every due job of `queue` (None: of every queue), and the jobs they enqueue,
        until none is due; with a real worker on one thread, so jobs run one at a time in
        the order a worker claims them. Jobs delayed into the future, or retrying after a
        backoff, stay queued. With `raise_errors`, a failed run raises JobFailed (its
        traceback in the notes) once the drain is over."""
        drained = Drained()
        self._draining.set()
        try:
            while True:
                before = drained.ran
                self._pass(queue, drained)
                if queue is not None or drained.ran == before:
                    break
        finally:
            self._draining.clear()
        if raise_errors and drained.failures:
            job_id, error = drained.failures[0]
            failed = JobFailed(job_id, str(self.app.job(job_id).status()), error)
            if error.get("traceback"):
                failed.add_note(str(error["traceback"]))
            if len(drained.failures) > 1:
                failed.add_note(f"{len(drained.failures) - 1} other runs failed too")
            raise failed
        return drained

    def _pass(self, queue: str | None, drained: Drained) -> None:
        """One burst worker over the queue given, or every queue known now."""
        app = self.app
        groups: list[str] | None = None
        if queue is None:
            queues = {d.options.queue for d in app.registry.definitions() if not d.subscription}
            queues |= set(app.queues) | set(app.queue_counts())
        else:
            queues = {queue}
            groups = [
                d.subscription.group
                for d in app.registry.definitions()
                if d.subscription is not None and d.subscription.queue == queue
            ]
        worker = app.worker(
            queues=sorted(queues) or ["default"],
            executor="thread",
            concurrency=1,
            burst=True,
            install_signals=False,
            observer=_Tally(drained),
            groups=groups,
        )
        worker.run()

    def _after_insert(self) -> None:
        """Inline mode: run what was just stored, unless a drain under way will."""
        if self.mode == "inline" and not self._draining.is_set():
            self.drain()

    def _definition(self, task: Task[..., Any] | str) -> TaskDef:
        if isinstance(task, Task):
            return task.definition
        return self.app.registry.get(task)


def _no_progress(fraction: float, message: str | None) -> None:
    """Progress reported by a job run with `perform_job`: nobody stores it."""


async def _await(value: Any) -> Any:
    return await value


def _expected(
    args: Sequence[Any] | None,
    kwargs: dict[str, Any] | None,
    queue: str | None,
    priority: int | None,
) -> dict[str, Any]:
    """What an assertion asks for, arguments as JSON would bring them back."""
    want: dict[str, Any] = {}
    if args is not None:
        want["args"] = serialization.loads(serialization.dumps(list(args), "args", None))
    if kwargs is not None:
        want["kwargs"] = serialization.loads(serialization.dumps(kwargs, "kwargs", None))
    if queue is not None:
        want["queue"] = queue
    if priority is not None:
        want["priority"] = priority
    return want


def _matches(job: Job, want: dict[str, Any]) -> bool:
    return all(getattr(job, key) == value for key, value in want.items())


def _describe(want: dict[str, Any]) -> str:
    if not want:
        return "any arguments"
    return ", ".join(f"{key} {value!r}" for key, value in want.items())


def _line(job: Job) -> str:
    return (
        f"job {job.id} ({job.state}): args {job.args!r}, kwargs {job.kwargs!r}, "
        f"queue {job.queue!r}, priority {job.priority}"
    )


def _found(name: str, jobs: list[Job]) -> str:
    if not jobs:
        return f"no job of task {name!r} is enqueued"
    listed = "\n  ".join(_line(job) for job in jobs)
    return f"enqueued jobs of task {name!r}:\n  {listed}"


@contextmanager
def harness(app: App, *, mode: Mode = "manual", url: str | None = None) -> Iterator[Harness]:
    """Point `app` at fresh storage for a test: `url` (a fresh, empty database), or a
    SQLite file in a temporary directory removed afterwards. `mode` "manual" stores jobs
    until `drain` or `perform_job` runs them; "inline" runs each enqueue's jobs (and the
    jobs they enqueue) before the enqueue returns. The app's own storage is put back on
    exit, and its schema is created on the fresh one."""
    checked = check_mode(mode)
    scratch = None
    if url is None:
        scratch = Path(tempfile.mkdtemp(prefix="offload-test-"))
        url = f"sqlite:///{scratch / 'offload.db'}"
    saved = (app.url, app.backend, app.auto_migrate, app._ready_pid)
    under_test = Harness(app, checked)
    app.url, app.backend, app.auto_migrate, app._ready_pid = url, open_backend(url), True, 0
    app._loop_groups.clear()  # they insert through the backend they were made with
    insert, insert_async, insert_workflow = app._insert, app._insert_async, app._insert_workflow

    def inline_insert(spec: JobSpec, payloads: Sequence[Payload], conn: Any) -> Inserted:
        if conn is not None:
            raise InlineTransaction(spec.task)
        done = insert(spec, payloads, conn)
        under_test._after_insert()
        return done

    async def inline_insert_async(spec: JobSpec, payloads: Sequence[Payload]) -> Inserted:
        import asyncio

        done = await insert_async(spec, payloads)
        await asyncio.to_thread(under_test._after_insert)
        return done

    def inline_workflow(params: WorkflowInsertParams) -> WorkflowInserted:
        if params.conn is not None:
            raise InlineTransaction(params.nodes[0].spec.task if params.nodes else "")
        done = insert_workflow(params)
        under_test._after_insert()
        return done

    try:
        app.ready()
        if checked == "inline":
            # The App's one insert path, wrapped on this instance for the test's length;
            # not an `offload.Middleware`: a middleware's errors are contained (logged), and
            # its hooks run on the event loop's thread, while an inline drain must raise into
            # the test and, for a coroutine's enqueue, run off the loop.
            app._insert = inline_insert  # type: ignore[method-assign]
            app._insert_async = inline_insert_async  # type: ignore[method-assign]
            app._insert_workflow = inline_workflow  # type: ignore[method-assign]
        yield under_test
    finally:
        for wrapped in ("_insert", "_insert_async", "_insert_workflow"):
            vars(app).pop(wrapped, None)
        try:
            app.backend.close()
        finally:
            app.url, app.backend, app.auto_migrate, app._ready_pid = saved
            app._loop_groups.clear()
            if scratch is not None and os.path.isdir(scratch):
                shutil.rmtree(scratch, ignore_errors=True)
