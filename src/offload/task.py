"""`Task`: a registered function that can be enqueued, with per-call options."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar

from offload.core import options as rules
from offload.core import serialization
from offload.core.errors import ValidationError
from offload.core.job import JobSpec, Payload
from offload.core.options import EnqueueOptions
from offload.core.task import TaskDef
from offload.handle import JobHandle

if TYPE_CHECKING:
    from offload.app import App

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Call:
    """The arguments of one job, for `Task.enqueue_many`."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def call(*args: Any, **kwargs: Any) -> Call:
    """Arguments of one job: `task.enqueue_many([call(1, x=2), call(3)])`."""
    return Call(args, kwargs)


class Task(Generic[P, R]):
    """A registered task: call it directly, or enqueue it to run on a worker."""

    def __init__(
        self, app: App, definition: TaskDef, overrides: EnqueueOptions, conn: Any = None
    ) -> None:
        self.app = app
        self.definition = definition
        self._overrides = overrides
        self._conn = conn
        self._built: JobSpec | None = None
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
        """The same task with per-call options; `conn` enqueues in the caller's transaction.

        `delay` is seconds from the database's now, at most 100 years; `at` is an aware
        datetime from 1970-01-01 to 9999-12-31 23:59:59 UTC. A bad value raises a
        ValidationError naming it.
        """
        if delay is not None and at is not None:
            raise ValidationError("give either delay or at, not both")
        o = self._overrides
        if at is not None:
            # Stored exactly: the database compares it with its own clock, not ours.
            run_at, wait = rules.check_run_at(at), 0.0
        elif delay is not None:
            run_at, wait = None, rules.check_delay(delay)
        else:
            run_at, wait = o.run_at, o.delay
        merged = EnqueueOptions(
            queue=o.queue if queue is None else rules.check_name("queue", queue, ValidationError),
            priority=check_priority(priority) if priority is not None else o.priority,
            delay=wait,
            run_at=run_at,
            max_attempts=(
                rules.check_max_attempts(max_attempts, ValidationError)
                if max_attempts is not None
                else o.max_attempts
            ),
            idempotency_key=(
                rules.check_text("idempotency_key", idempotency_key)
                if idempotency_key is not None
                else o.idempotency_key
            ),
            meta=meta if meta is not None else o.meta,
        )
        return Task(self.app, self.definition, merged, conn if conn is not None else self._conn)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Store one job; returns once it is committed (durable). With an idempotency key
        already used, returns the handle of the job that holds it. Arguments the function
        cannot take raise ArgumentsMismatch, storing nothing."""
        args_text, kwargs_text = serialization.dumps_args(
            args, kwargs, limit=self.app.payload_limit
        )
        definition = self.definition
        definition.check_args(args, kwargs)
        payload = Payload(
            args_text,
            kwargs_text,
            self._overrides.idempotency_key,
            definition.limit_key(args, kwargs),
            group_key=definition.group_key(args, kwargs),
        )
        (job_id,) = self.app._insert(self._spec(), [payload], self._conn)
        return JobHandle(self.app.backend, job_id)

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """`enqueue` for asyncio code: the durable commit runs in a thread, off the loop."""
        import asyncio  # loaded on first use: workers and fork servers never need it

        return await asyncio.to_thread(self.enqueue, *args, **kwargs)

    def enqueue_many(self, calls: Iterable[Call | tuple[Any, ...]]) -> list[JobHandle[R]]:
        """Store many jobs in one transaction and one statement; all or none (a call whose
        arguments the function cannot take refuses the batch, naming its index)."""
        if self._overrides.idempotency_key is not None:
            raise ValidationError("enqueue_many takes no idempotency_key: one key names one job")
        limit = self.app.payload_limit
        definition = self.definition
        payloads: list[Payload] = []
        for index, c in enumerate(calls):
            a, k = (c.args, c.kwargs) if isinstance(c, Call) else (c, {})
            args_text, kwargs_text = serialization.dumps_args(a, k, limit=limit)
            definition.check_args(a, k, index)
            key = definition.limit_key(a, k, index)
            group = definition.group_key(a, k, index)
            payloads.append(Payload(args_text, kwargs_text, None, key, group_key=group))
        ids = self.app._insert(self._spec(), payloads, self._conn)
        backend = self.app.backend
        return [JobHandle(backend, job_id) for job_id in ids]

    def _spec(self) -> JobSpec:
        """What every job of this task and these options shares; built once per Task (a
        Task never changes: `options` returns a new one)."""
        if self._built is None:
            self._built = self.definition.spec(self._overrides)
        return self._built


def check_priority(value: int) -> int:
    """Validate a priority given at enqueue time."""
    return rules.check_priority(value, ValidationError)


class TaskDecorator(Protocol):
    """What `@app.task(...)` with options returns: turns a function into a Task."""

    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


__all__ = ["Call", "Task", "TaskDecorator", "call", "check_priority"]
