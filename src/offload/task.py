"""`Task`: a registered function that can be enqueued, with per-call options."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, Self, TypeVar, overload

from offload.backends.params import WorkflowInsertParams
from offload.core import options as rules
from offload.core import serialization
from offload.core.errors import ValidationError, shorten
from offload.core.events import check_channel
from offload.core.job import JobSpec, Payload
from offload.core.options import EnqueueOptions
from offload.core.shaping import Unique, check_key, check_on_duplicate
from offload.core.task import TaskDef
from offload.core.workflow import Edge, Node
from offload.handle import JobHandle
from offload.workflow import Signature, check_rule

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
        unique: bool | str | Unique | None = None,
        on_duplicate: str | None = None,
        replace: str | None = None,
        replace_running: bool | None = None,
        channel: str | None = None,
        depends_on: Iterable[int | JobHandle[Any]] | None = None,
        on_parent_failure: str | None = None,
    ) -> Self:
        """The same task with per-call options; `conn` enqueues in the caller's transaction.

        `delay` is seconds from the database's now, at most 100 years; `at` is an aware
        datetime from 1970-01-01 to 9999-12-31 23:59:59 UTC. A bad value raises a
        ValidationError naming it.

        `unique` (True, a key, or `offload.Unique`; False drops the task's rule) answers an
        enqueue whose key is held with the holder's handle (`duplicate` True), or raises
        DuplicateJob with `on_duplicate="raise"`. `idempotency_key`: the same key gives
        the same job for the App's `idempotency_retention`. `replace`: storing the job
        cancels queued jobs with that key (`replace_running`: asks running ones to stop).
        Keys are 1 to 255 characters. `channel` (1 to 255 characters, e.g. "user:42")
        publishes every change of the jobs on that event channel (`App.events`).

        `depends_on` (job ids or handles) stores the jobs `waiting` until each of those
        is over; `on_parent_failure` says what one ending dead or cancelled does: "fail"
        (the default: the job ends dead, its error naming the parent), "cancel", or "run"
        (it runs anyway, and reads how each parent ended from `current_job().parents()`).
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
                check_key("idempotency_key", idempotency_key)
                if idempotency_key is not None
                else o.idempotency_key
            ),
            meta=meta if meta is not None else o.meta,
            unique=o.unique if unique is None else (Unique.of(unique) or False),
            on_duplicate=(
                o.on_duplicate if on_duplicate is None else check_on_duplicate(on_duplicate)
            ),
            replace=o.replace if replace is None else check_key("replace", replace),
            replace_running=(
                o.replace_running
                if replace_running is None
                else _flag("replace_running", replace_running)
            ),
            channel=o.channel if channel is None else check_channel(channel),
            depends_on=o.depends_on if depends_on is None else check_parents(depends_on),
            on_parent_failure=(
                o.on_parent_failure if on_parent_failure is None else check_rule(on_parent_failure)
            ),
        )
        return type(self)(
            self.app, self.definition, merged, conn if conn is not None else self._conn
        )

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Store one job; returns once it is committed (durable). With a unique or
        idempotency key that is held, stores nothing and returns the handle of the job that
        holds it (`duplicate` True). Arguments the function cannot take raise
        ArgumentsMismatch, storing nothing; arguments of a parameter annotated with a
        pydantic model are validated (ValidationError) and stored as the model's JSON."""
        payload = self._payload(args, kwargs)
        if self._overrides.depends_on:
            return self._dependants([payload])[0]
        done = self.app._insert(self._spec(), [payload], self._conn)
        return JobHandle(self.app.backend, done.ids[0], duplicate=bool(done.duplicates))

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """`enqueue` for asyncio code: the durable commit runs in a thread, off the loop,
        shared with the enqueues of other coroutines of this loop waiting meanwhile."""
        import asyncio  # loaded on first use: workers and fork servers never need it

        if self._overrides.depends_on or self._conn is not None:
            return await asyncio.to_thread(self.enqueue, *args, **kwargs)
        payload = self._payload(args, kwargs)
        done = await self.app._insert_async(self._spec(), [payload])
        return JobHandle(self.app.backend, done.ids[0], duplicate=bool(done.duplicates))

    def _payload(self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> Payload:
        """One call's stored form, its arguments checked against the function first."""
        definition = self.definition
        if definition.models:
            args, kwargs = definition.prepare(args, kwargs)
        args_text, kwargs_text = serialization.dumps_args(
            args, kwargs, limit=self.app.payload_limit
        )
        definition.check_args(args, kwargs)
        over = self._overrides
        return Payload(
            args_text,
            kwargs_text,
            over.idempotency_key,
            definition.limit_key(args, kwargs),
            definition.unique_key(definition.unique(over), args, kwargs),
            definition.group_key(args, kwargs),
            over.replace,
        )

    def enqueue_many(self, calls: Iterable[Call | tuple[Any, ...]]) -> list[JobHandle[R]]:
        """Store many jobs in one transaction and one statement; all or none (a call whose
        arguments the function cannot take refuses the batch, naming its index).

        With a unique rule each call gets its own outcome: a call whose key is held, or
        repeats the key of an earlier call, stores nothing and gets the handle of that job
        (`duplicate` True); with `on_duplicate="raise"` the batch stores nothing."""
        over = self._overrides
        if over.idempotency_key is not None:
            raise ValidationError("enqueue_many takes no idempotency_key: one key names one job")
        limit = self.app.payload_limit
        definition = self.definition
        unique = definition.unique(over)
        # What is the same for every call is decided once: a call of a task without keys,
        # limits or groups is its two texts (after its models, if any, prepared it), its
        # arguments checked by counting.
        models, dumps = definition.models, serialization.dumps_args
        bare = unique is None and over.replace is None and definition.keyless
        fewest, most = definition.arity or (1, 0)  # (1, 0): no count fits, always bind
        new, no_keys = tuple.__new__, (None, None, None, None, None)
        payloads: list[Payload] = []
        for index, c in enumerate(calls):
            a: tuple[Any, ...] | list[Any]
            a, k = (c.args, c.kwargs) if isinstance(c, Call) else (c, {})
            try:
                if models:
                    a, k = definition.prepare(a, k)
                texts = dumps(a, k, limit=limit)
            except ValidationError as exc:  # not JSON, too large, a model refused it
                exc.at_call(index)
                raise
            if k or not fewest <= len(a) <= most:
                definition.check_args(a, k, index)
            if bare:  # a Payload built as a tuple: no call per job
                payloads.append(new(Payload, texts + no_keys))
                continue
            key = definition.limit_key(a, k, index)
            group = definition.group_key(a, k, index)
            unique_key = definition.unique_key(unique, a, k)
            payloads.append(Payload(*texts, None, key, unique_key, group, over.replace))
        if over.depends_on:
            return self._dependants(payloads)
        done = self.app._insert(self._spec(), payloads, self._conn)
        backend, duplicates = self.app.backend, done.duplicates
        if not duplicates:
            return [JobHandle(backend, job_id) for job_id in done.ids]
        return [JobHandle(backend, job_id, i in duplicates) for i, job_id in enumerate(done.ids)]

    def s(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        """A signature of this call with these options, for a workflow: in a chain it
        takes the previous part's result as its first argument. Model arguments are
        validated when the workflow is enqueued, where it is known what comes first."""
        return Signature(self.app, self.name, args, kwargs, options=self._overrides)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        """An immutable signature: in a chain it ignores the previous part's result."""
        return Signature(self.app, self.name, args, kwargs, options=self._overrides, immutable=True)

    def _dependants(self, payloads: list[Payload]) -> list[JobHandle[R]]:
        """Store jobs that wait for `depends_on`, in one transaction (no keys: a job that
        waits is stored as given)."""
        over = self._overrides
        spec = self._spec()
        if spec.rules is not None:
            raise ValidationError(
                "depends_on cannot be combined with unique, idempotency_key or replace"
            )
        nodes = [Node(str(i), spec, payload) for i, payload in enumerate(payloads)]
        edges = [
            Edge(i, parent_id=parent, on_failure=over.on_parent_failure)
            for i in range(len(nodes))
            for parent in over.depends_on
        ]
        done = self.app._insert_workflow(WorkflowInsertParams(None, nodes, edges, None, self._conn))
        return [JobHandle(self.app.backend, job_id) for job_id in done.ids]

    def _spec(self) -> JobSpec:
        """What every job of this task and these options shares; built once per Task (a
        Task never changes: `options` returns a new one)."""
        if self._built is None:
            self._built = self.definition.spec(self._overrides, self.app.idempotency_retention)
        return self._built


def _flag(name: str, value: object) -> bool:
    """A yes/no option: a bool, nothing else."""
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be True or False, got {shorten(value)}")
    return value


def check_parents(parents: Iterable[int | JobHandle[Any]]) -> tuple[int, ...]:
    """Job ids from ids or handles, or a ValidationError naming the bad one."""
    if isinstance(parents, int | str | JobHandle):
        raise ValidationError("depends_on takes a list of job ids or handles")
    ids: list[int] = []
    for parent in parents:
        job_id = parent.id if isinstance(parent, JobHandle) else parent
        if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id < 1:
            raise ValidationError(f"depends_on takes job ids or handles, got {shorten(parent)}")
        ids.append(job_id)
    return tuple(dict.fromkeys(ids))


def check_priority(value: int) -> int:
    """Validate a priority given at enqueue time."""
    return rules.check_priority(value, ValidationError)


class AsyncTask(Task[P, R]):
    """A task whose function is `async def`: its jobs' result is what the coroutine
    returns (`JobHandle[R]`), and calling it directly gives the coroutine to await."""

    def __call__(  # type: ignore[override]  # the call is the coroutine, the job's result R
        self, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        """The coroutine of the function, to await here and now, without a queue."""
        coroutine: Coroutine[Any, Any, R] = self.definition.fn(*args, **kwargs)
        return coroutine


class TaskDecorator(Protocol):
    """What `@app.task(...)` with options returns: turns a function into a Task."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


__all__ = ["AsyncTask", "Call", "Task", "TaskDecorator", "call", "check_priority"]
