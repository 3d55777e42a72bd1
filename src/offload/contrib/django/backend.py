"""`OffloadBackend`: Django tasks stored and run as offload jobs.

A Django task is registered with offload under its module path (`myapp.tasks.send_mail`)
when it is declared, so a worker that imports the project's `tasks` modules knows it. Its
queue, priority and `run_after` become the job's; `TaskResult.id` is the job id (as text),
and a result is read back from the job: READY while it waits (or waits for a retry),
RUNNING, SUCCESSFUL with its return value, or FAILED with one `TaskError` per failed run.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, transaction
from django.utils import timezone
from typing_extensions import ParamSpec

from offload.app import App
from offload.contrib.django._tasks import (
    BaseTaskBackend,
    Task,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    normalize_json,
    task_enqueued,
)
from offload.contrib.django.conf import OPTIONS, PARAMS, check_keys, get_app, transactional_alias
from offload.core.errors import JobNotFound
from offload.core.job import Job
from offload.core.schedule import ScheduleDef
from offload.core.states import JobState
from offload.runtime.context import current_job
from offload.task import Task as OffloadTask

P = ParamSpec("P")
T = TypeVar("T")

# Without Django's type hints, its TextChoices members look like tuples to mypy: Any here.
_READY: Any = TaskResultStatus.READY
#: The Django status of each offload state: READY for every job that will still run (shed
#: by flow control, a retry or the sweep brings it back), FAILED for a job that will not.
STATUS: dict[JobState, Any] = {
    JobState.WAITING: _READY,
    JobState.SCHEDULED: _READY,
    JobState.AVAILABLE: _READY,
    JobState.RETRYING: _READY,
    JobState.SHED: _READY,
    JobState.RUNNING: TaskResultStatus.RUNNING,
    JobState.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    JobState.DEAD: TaskResultStatus.FAILED,
    JobState.CANCELLED: TaskResultStatus.FAILED,
}


class OffloadDjangoTask(Task[P, T]):
    """A Django task that registers itself with offload when it is declared."""

    def __post_init__(self) -> None:
        super().__post_init__()
        backend = self.get_backend()
        if isinstance(backend, OffloadBackend):
            backend.register(self)


class OffloadBackend(BaseTaskBackend):
    """The Django tasks backend: `TASKS = {"default": {"BACKEND":
    "offload.contrib.django.OffloadBackend", "OPTIONS": {...}}}` (OPTIONS: `max_attempts`,
    1 by default as in Django, and `timeout` in seconds; any other key is refused)."""

    task_class = OffloadDjangoTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        check_keys(params, PARAMS, f"TASKS[{alias!r}]")
        super().__init__(alias, params)
        options = check_keys(self.options, OPTIONS, f"TASKS[{alias!r}]['OPTIONS']")
        self.max_attempts = options.get("max_attempts", 1)
        self.timeout = options.get("timeout")
        #: Django tasks by module path, and their offload tasks.
        self._tasks: dict[str, tuple[Task[Any, Any], OffloadTask[..., Any]]] = {}

    @property
    def app(self) -> App:
        return get_app()

    def register(self, task: Task[Any, Any]) -> OffloadTask[..., Any]:
        """The offload task of `task` (registered on first sight of its function)."""
        name = task.module_path
        known = self._tasks.get(name)
        if known is not None and known[0].func is task.func:
            return known[1]
        keywords: dict[str, Any] = {"name": name, "max_attempts": self.max_attempts}
        if self.timeout is not None:
            keywords["timeout"] = self.timeout
        if inspect.iscoroutinefunction(task.func):
            keywords["executor"] = "async"
        registered: OffloadTask[..., Any] = self.app.task(**keywords)(_runner(self, task))
        self._tasks[name] = (task, registered)
        return registered

    def enqueue(
        self,
        task: Task[P, T],
        args: P.args,  # type: ignore[valid-type]
        kwargs: P.kwargs,  # type: ignore[valid-type]
    ) -> TaskResult[T]:
        """Store the task as a job: in the current transaction of the Django database
        offload shares, when one is open (the job exists once it commits). Arguments are
        made JSON by Django's own rule first, which raises its own TypeError or ValueError
        for one that is not (as Django's backends do), before anything is stored."""
        self.validate_task(task)
        args, kwargs = normalize_json(args), normalize_json(kwargs)
        options: dict[str, Any] = {"queue": task.queue_name, "priority": task.priority}
        if task.run_after is not None:
            run_after = task.run_after
            if timezone.is_naive(run_after):
                run_after = timezone.make_aware(run_after)
            options["at"] = run_after
        alias = transactional_alias()
        if alias is not None:
            connection = transaction.get_connection(alias)
            if connection.in_atomic_block:
                connection.ensure_connection()
                options["conn"] = connection.connection
        handle = self.register(task).options(**options).enqueue(*args, **kwargs)
        # Not read back: in a transaction the job is visible only on Django's connection.
        result: TaskResult[T] = TaskResult(
            task=task,
            id=str(handle.id),
            status=_READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """The result of job `result_id`; TaskResultDoesNotExist for any other id."""
        try:
            job = self.app.job(int(result_id)).job()
        except (ValueError, JobNotFound):
            raise TaskResultDoesNotExist(result_id) from None
        known = self._tasks.get(job.task)
        if known is None:
            from django.utils.module_loading import import_string

            try:
                import_string(job.task)  # declaring it registers it
            except ImportError:
                raise TaskResultDoesNotExist(result_id) from None
            known = self._tasks.get(job.task)
            if known is None:
                raise TaskResultDoesNotExist(result_id)
        return self._result(known[0], job)

    def _result(self, task: Task[Any, T], job: Job) -> TaskResult[T]:
        result: TaskResult[T] = TaskResult(
            task=task,
            id=str(job.id),
            status=STATUS[job.state],
            enqueued_at=job.enqueued_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            last_attempted_at=job.started_at,
            args=job.args,
            kwargs=job.kwargs,
            backend=self.alias,
            errors=[_error(entry) for entry in job.errors],
            worker_ids=[job.worker or ""] * job.attempt,
        )
        if job.state is JobState.SUCCEEDED:
            object.__setattr__(result, "_return_value", job.result)
        return result

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        try:
            get_app()
        except ImproperlyConfigured as exc:
            yield checks.Error(str(exc), id="offload.E001")


def schedule(
    task: Task[Any, Any],
    cron: str,
    *,
    name: str | None = None,
    tz: str = "UTC",
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
) -> ScheduleDef:
    """Run a Django task on a cron schedule (five fields, or six with seconds first), in
    its queue and at its priority: fired by `manage.py offload scheduler`, once per tick
    however many schedulers run. Declare it beside the task, in the app's `tasks` module,
    so that every scheduler knows it."""
    backend = task.get_backend()
    if not isinstance(backend, OffloadBackend):
        raise ImproperlyConfigured(
            f"schedule needs a task of an OffloadBackend; {task.module_path} uses "
            f"{type(backend).__name__}"
        )
    return get_app().schedule(
        backend.register(task),
        cron,
        name=name,
        tz=tz,
        args=args,
        kwargs=kwargs,
        queue=task.queue_name,
        priority=task.priority,
    )


def _error(entry: dict[str, Any]) -> TaskError:
    """A Django TaskError from an offload error entry (`type` is a dotted path, bare for
    builtins)."""
    kind = str(entry.get("type") or "Exception")
    path = kind if "." in kind else f"builtins.{kind}"
    text = entry.get("traceback") or f"{kind}: {entry.get('message')}"
    return TaskError(exception_class_path=path, traceback=str(text))


def _runner(backend: OffloadBackend, task: Task[Any, Any]) -> Callable[..., Any]:
    """What the offload worker calls for a job of `task`: the function (with its
    TaskContext first when it takes one), Django's stale connections closed around it as
    a request would."""

    def context() -> list[Any]:
        if not task.takes_context:
            return []
        return [TaskContext(task_result=backend.get_result(str(current_job().id)))]

    if inspect.iscoroutinefunction(task.func):

        @functools.wraps(task.func)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            return await task.func(*context(), *args, **kwargs)

        return _called_as(run_async, task)

    @functools.wraps(task.func)
    def run(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return task.func(*context(), *args, **kwargs)
        finally:
            close_old_connections()

    return _called_as(run, task)


def _called_as(runner: Callable[..., Any], task: Task[Any, Any]) -> Callable[..., Any]:
    """`runner` with the signature enqueues are checked against: the function's, less its
    `context` parameter when it takes one (the worker supplies it)."""
    signature = inspect.signature(task.func)
    if task.takes_context:
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    vars(runner)["__signature__"] = signature
    return runner
