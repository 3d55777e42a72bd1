"""The public Python API: `App`, `Task` and the enqueue calls."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

from offload.backends import open_backend
from offload.backends.base import Backend, JobFilter, ScheduleState, WorkerInfo
from offload.core import serialization
from offload.core.errors import ConfigurationError, ScheduleNotFound, SerializationError
from offload.core.job import Job, JobBatch, NewJob
from offload.core.options import RetryPolicy, TaskOptions, check_delay, check_name
from offload.core.schedule import Misfire, ScheduleDef, parse_misfire
from offload.core.states import JobState
from offload.core.task import Registry, TaskDef
from offload.handle import JobHandle

if TYPE_CHECKING:
    from offload.runtime.scheduler import Scheduler
    from offload.runtime.worker import Worker

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_URL = "sqlite:///offload.db"


@dataclass(frozen=True, slots=True)
class Call:
    """The arguments of one job, for `Task.enqueue_many`."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def call(*args: Any, **kwargs: Any) -> Call:
    """Arguments of one job: `task.enqueue_many([call(1, x=2), call(3)])`."""
    return Call(args, kwargs)


@dataclass(frozen=True, slots=True)
class EnqueueOptions:
    """Per-call overrides of a task's defaults."""

    queue: str | None = None
    priority: int | None = None
    delay: float = 0.0
    max_attempts: int | None = None
    idempotency_key: str | None = None
    meta: dict[str, Any] | None = None
    conn: Any = None


class Task(Generic[P, R]):
    """A registered task: call it directly, or enqueue it to run on a worker."""

    def __init__(self, app: App, definition: TaskDef, overrides: EnqueueOptions) -> None:
        self.app = app
        self.definition = definition
        self._overrides = overrides
        self.__doc__ = definition.fn.__doc__
        self.__name__ = definition.name

    @property
    def name(self) -> str:
        """The task's stable name, stored in each job."""
        return self.definition.name

    def __repr__(self) -> str:
        return f"<Task {self.name!r} queue={self.definition.options.queue!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, without a queue."""
        result: R = self.definition.fn(*args, **kwargs)
        return result

    def options(
        self,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
        at: datetime | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
        meta: dict[str, Any] | None = None,
        conn: Any = None,
    ) -> Task[P, R]:
        """The same task with per-call options; `conn` enqueues in the caller's transaction."""
        if delay is not None and at is not None:
            raise ConfigurationError("give either delay or at, not both")
        if at is not None:
            if at.tzinfo is None:
                raise ConfigurationError(f"at={at!r} has no time zone; use an aware datetime")
            delay = max((at - datetime.now(UTC)).total_seconds(), 0.0)
        o = self._overrides
        merged = EnqueueOptions(
            queue=check_name("queue", queue) if queue is not None else o.queue,
            priority=_check_priority(priority) if priority is not None else o.priority,
            delay=check_delay(delay) if delay is not None else o.delay,
            max_attempts=(
                RetryPolicy(max_attempts=max_attempts).max_attempts
                if max_attempts is not None
                else o.max_attempts
            ),
            idempotency_key=idempotency_key if idempotency_key is not None else o.idempotency_key,
            meta=meta if meta is not None else o.meta,
            conn=conn if conn is not None else o.conn,
        )
        return Task(self.app, self.definition, merged)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Store one job; returns once it is committed (durable)."""
        job = self._new_job(args, kwargs)
        (job_id,) = self.app._insert([job], self._overrides.conn)
        return JobHandle(self.app.backend, job_id)

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """`enqueue` for asyncio code: the durable commit runs in a thread, off the loop."""
        import asyncio  # loaded on first use: workers and fork servers never need it

        return await asyncio.to_thread(self.enqueue, *args, **kwargs)

    def enqueue_many(self, calls: Iterable[Call | tuple[Any, ...]]) -> list[JobHandle[R]]:
        """Store many jobs in one transaction and one statement; all or none."""
        limit = self.app.payload_limit
        args: list[str] = []
        kwargs: list[str] = []
        for c in calls:
            a, k = (c.args, c.kwargs) if isinstance(c, Call) else (c, {})
            args_text, kwargs_text = serialization.dumps_args(a, k, limit=limit)
            args.append(args_text)
            kwargs.append(kwargs_text)
        jobs = JobBatch(self._new_job((), {}), args, kwargs)
        ids = self.app._insert(jobs, self._overrides.conn)
        backend = self.app.backend
        return [JobHandle(backend, job_id) for job_id in ids]

    def _new_job(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> NewJob:
        opts, over = self.definition.options, self._overrides
        args_text, kwargs_text = serialization.dumps_args(
            args, kwargs, limit=self.app.payload_limit
        )
        return NewJob(
            task=self.definition.name,
            queue=over.queue or opts.queue,
            args=args_text,
            kwargs=kwargs_text,
            priority=opts.priority if over.priority is None else over.priority,
            max_attempts=over.max_attempts or opts.retry.max_attempts,
            delay=over.delay,
            idempotency_key=over.idempotency_key,
            meta="{}" if over.meta is None else serialization.dumps(over.meta, "meta"),
        )


def _check_priority(value: int) -> int:
    return TaskOptions(priority=value).priority


class TaskDecorator(Protocol):
    """What `@app.task(...)` with options returns: turns a function into a Task."""

    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class App:
    """An offload application: a database, the tasks registered on it, and its faces.

    `url` is `sqlite:///path.db` (the default, `sqlite:///offload.db`, or `$OFFLOAD_URL`) or
    `postgresql://...`. The schema is created on first use for SQLite; for PostgreSQL run
    `offload migrate` (or pass `auto_migrate=True`).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        auto_migrate: bool | None = None,
        payload_limit: int = serialization.DEFAULT_PAYLOAD_LIMIT,
    ) -> None:
        self.url = url or os.environ.get("OFFLOAD_URL") or DEFAULT_URL
        self.backend: Backend = open_backend(self.url)
        self.auto_migrate = self.backend.name == "sqlite" if auto_migrate is None else auto_migrate
        self.payload_limit = payload_limit
        self.registry = Registry()
        self.schedules: dict[str, ScheduleDef] = {}
        self._ready_pid = 0

    def __repr__(self) -> str:
        return f"<offload.App {self.backend.name}:{self.backend.location}>"

    # -- declaring tasks --------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, R]) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 3,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        cpu_seconds: float | None = None,
        memory_mb: float | None = None,
        executor: str | None = None,
    ) -> TaskDecorator: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 3,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        cpu_seconds: float | None = None,
        memory_mb: float | None = None,
        executor: str | None = None,
    ) -> Any:
        """Register a function as a task: `@app.task` or `@app.task(queue="mail")`.

        `timeout` (wall-clock seconds), `cpu_seconds` and `memory_mb` (MiB) limit each run;
        a run over a limit fails with an error naming it. `executor` picks where jobs run;
        `cpu_seconds` and `memory_mb` need the process executor (a thread job past its
        timeout is only told to stop, and keeps its slot until it returns).
        """
        policy = retry or RetryPolicy(max_attempts=max_attempts)
        if retry is not None and max_attempts not in (3, retry.max_attempts):
            raise ConfigurationError("give max_attempts either directly or in retry, not both")
        options = TaskOptions(
            queue=queue,
            priority=priority,
            retry=policy,
            timeout=timeout,
            cpu_seconds=cpu_seconds,
            memory_mb=memory_mb,
            executor=executor,
        )

        def register(func: Callable[..., Any]) -> Task[..., Any]:
            task_name = name or f"{func.__module__}.{func.__qualname__}"
            definition = TaskDef(task_name, func, options)
            self.registry.add(definition)
            return Task(self, definition, EnqueueOptions())

        return register if fn is None else register(fn)

    # -- periodic jobs ----------------------------------------------------------------

    def periodic(
        self,
        cron: str,
        *,
        name: str | None = None,
        tz: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        misfire: Misfire | str = Misfire.LAST,
        catch_up: float = 3600.0,
    ) -> Callable[[Callable[P, R] | Task[P, R]], Task[P, R]]:
        """Run a task on a cron schedule: `@app.periodic("0 3 * * *", tz="Europe/Paris")`.

        Decorates a plain function (registering it as a task) or an existing Task.
        """

        def register(fn: Callable[P, R] | Task[P, R]) -> Task[P, R]:
            task: Task[P, R] = fn if isinstance(fn, Task) else self.task(fn)
            self.schedule(
                task,
                cron,
                name=name,
                tz=tz,
                args=args,
                kwargs=kwargs,
                queue=queue,
                priority=priority,
                misfire=misfire,
                catch_up=catch_up,
            )
            return task

        return register

    def schedule(
        self,
        task: Task[..., Any] | str,
        cron: str,
        *,
        name: str | None = None,
        tz: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        misfire: Misfire | str = Misfire.LAST,
        catch_up: float = 3600.0,
    ) -> ScheduleDef:
        """Declare a schedule for a task declared elsewhere (by Task or by name)."""
        task_name = task.name if isinstance(task, Task) else self.registry.get(task).name
        sched = ScheduleDef(
            name=name or task_name,
            cron=cron,
            task=task_name,
            tz=tz,
            args=list(args),
            kwargs=dict(kwargs or {}),
            queue=None if queue is None else check_name("queue", queue),
            priority=None if priority is None else _check_priority(priority),
            misfire=parse_misfire(misfire),
            catch_up=catch_up,
        )
        serialization.dumps_args(sched.args, sched.kwargs, limit=self.payload_limit)
        if sched.name in self.schedules:
            raise ConfigurationError(f"a schedule named {sched.name!r} is already declared")
        self.schedules[sched.name] = sched
        return sched

    def scheduler(self, **options: Any) -> Scheduler:
        """A scheduler for this app's schedules; see `offload.runtime.scheduler.Scheduler`."""
        from offload.runtime.scheduler import Scheduler

        self.ready()
        return Scheduler(self.backend, self.registry, list(self.schedules.values()), **options)

    def cron_list(self) -> list[ScheduleState]:
        """Stored schedules with their last tick and last job's state."""
        self.ready()
        return self.backend.schedule_list()

    def cron_pause(self, name: str, paused: bool = True) -> None:
        """Pause (or resume) a schedule for every scheduler replica, across restarts."""
        self.ready()
        self.backend.schedule_pause(name, paused)

    def cron_run(self, name: str) -> JobHandle[Any]:
        """Enqueue a schedule's job once, now, outside its ticks."""
        sched = self.schedules.get(name)
        if sched is None:
            raise ScheduleNotFound(name)
        bound: Task[..., Any] = Task(self, self.registry.get(sched.task), EnqueueOptions())
        bound = bound.options(
            queue=sched.queue, priority=sched.priority, meta={"schedule": name, "manual": True}
        )
        return bound.enqueue(*sched.args, **sched.kwargs)

    # -- jobs by name (CLI, HTTP) -----------------------------------------------------

    def enqueue(
        self,
        task: str,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> JobHandle[Any]:
        """Enqueue a registered task by name; options as for `Task.options`."""
        if not isinstance(args if args is not None else [], list):
            raise SerializationError(f"args must be a JSON array, got {type(args).__name__}")
        if not isinstance(kwargs if kwargs is not None else {}, dict):
            raise SerializationError(f"kwargs must be a JSON object, got {type(kwargs).__name__}")
        for key in kwargs or {}:
            if type(key) is not str:
                raise SerializationError(
                    f"kwargs has a key {key!r} of type {type(key).__name__}; argument names are str"
                )
        definition = self.registry.get(task)
        bound: Task[..., Any] = Task(self, definition, EnqueueOptions())
        if options:
            bound = bound.options(**options)
        return bound.enqueue(*(args or []), **(kwargs or {}))

    def job(self, job_id: int) -> JobHandle[Any]:
        """A handle on an existing job; raises JobNotFound if there is none."""
        self.ready()
        self.backend.job_get(job_id)
        return JobHandle(self.backend, job_id)

    def jobs(
        self,
        *,
        queue: str | None = None,
        state: JobState | str | None = None,
        task: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """Jobs newest first; page with `before_id` = the last id of the previous page."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit must be a positive int, got {limit!r}")
        if before_id is not None and type(before_id) is not int:
            raise ConfigurationError(f"before_id must be a job id (int), got {before_id!r}")
        self.ready()
        return self.backend.job_list(
            JobFilter(
                queue=queue,
                state=None if state is None else _state(state),
                task=task,
                before_id=before_id,
                limit=limit,
            )
        )

    def retry(self, job_id: int) -> Job:
        """Make a dead, cancelled or shed job available again."""
        self.ready()
        return self.backend.job_retry(job_id)

    def cancel(self, job_id: int) -> Job:
        """Cancel a queued job (a running one is asked to stop)."""
        self.ready()
        return self.backend.job_cancel(job_id)

    def workers(self) -> list[WorkerInfo]:
        """Registered workers with their last heartbeat (by the database clock)."""
        self.ready()
        return self.backend.worker_list()

    def queue_counts(self) -> dict[str, dict[str, int]]:
        """Jobs per queue and state."""
        self.ready()
        return self.backend.queue_counts()

    # -- lifecycle --------------------------------------------------------------------

    def migrate(self) -> int:
        """Bring the database schema up to date; returns the version."""
        version = self.backend.migrate()
        self._ready_pid = os.getpid()
        return version

    def ready(self) -> None:
        """Check (or, with auto_migrate, create) the schema once per process."""
        if self._ready_pid == os.getpid():
            return
        if self.auto_migrate:
            self.backend.migrate()
        self.backend.schema_check()
        self._ready_pid = os.getpid()

    def worker(self, *, scheduler: bool = False, **options: Any) -> Worker:
        """A worker for this app (with this app's scheduler in a thread if `scheduler`);
        see `offload.runtime.worker.Worker` for the options."""
        from offload.runtime.worker import Worker

        self.ready()
        embedded = self.scheduler() if scheduler else None
        return Worker(self.backend, self.registry, scheduler=embedded, **options)

    def close(self) -> None:
        """Close the database connections."""
        self.backend.close()

    def _insert(self, jobs: Sequence[NewJob], conn: Any) -> list[int]:
        self.ready()
        return self.backend.job_insert(jobs, conn)


def _state(value: JobState | str) -> JobState:
    try:
        return JobState(value)
    except ValueError:
        names = ", ".join(s.value for s in JobState)
        raise ConfigurationError(f"unknown job state {value!r}; one of: {names}") from None


__all__ = ["App", "Call", "Task", "call"]
