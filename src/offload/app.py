"""`App`: the database, the tasks and schedules declared on it, and every operation on
jobs that the faces (CLI, HTTP, dashboard) call."""

from __future__ import annotations

import os
import weakref
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, Unpack, cast, overload

from offload.backends import open_backend
from offload.backends.base import Backend, Listener
from offload.backends.group import LoopGroups
from offload.backends.params import (
    EventReadParams,
    Inserted,
    JobFilter,
    JobIdsParams,
    JobInsertParams,
    JobListParams,
    JobRetryManyParams,
    JobRetryParams,
    NotifyParams,
    PublishParams,
    QueueChangeParams,
    ReplayParams,
    RetentionParams,
    StatsReadParams,
    SubscribeParams,
    TokenCreateParams,
    WorkflowInserted,
    WorkflowInsertParams,
    WorkflowListParams,
    WorkflowSummary,
)
from offload.backends.shards import ShardedBackend, open_shards
from offload.core import process, serialization
from offload.core.batch import BatchItem, BatchOptions
from offload.core.containment import NUL_ESCAPE
from offload.core.errors import (
    ConfigurationError,
    QueueNotFound,
    ScheduleNotFound,
    SerializationError,
    TokenExists,
    TokenNotFound,
    ValidationError,
    shorten,
)
from offload.core.events import (
    MAX_EVENT_PAGE,
    Event,
    EventCursor,
    JSONValue,
    check_channel,
    check_cursor,
)
from offload.core.flow import DEFAULT_AGING, QueuePolicy, Rate
from offload.core.job import Job, JobSpec, Payload
from offload.core.middleware import Enqueue, Middleware
from offload.core.options import (
    BatchTaskKeywords,
    EnqueueOptions,
    TaskKeywords,
    TaskOptions,
    check_count,
    check_name,
    check_page,
    check_priority,
    check_state,
    check_text,
    task_options,
)
from offload.core.records import (
    Census,
    JobChange,
    Leadership,
    QueueState,
    ScheduleState,
    WorkerInfo,
)
from offload.core.schedule import Misfire, ScheduleDef, parse_misfire
from offload.core.selection import (
    ACCEPTED,
    BulkProgress,
    JobSelection,
    Operation,
    check_moment,
    check_selection,
)
from offload.core.shaping import DEFAULT_RETENTION, check_retention
from offload.core.states import JobState
from offload.core.stats import StatsPoint, chart, check_window
from offload.core.status import (
    LOST_AFTER,
    QueueStatus,
    ScheduleStatus,
    WorkerStatus,
    is_lost,
    queue_statuses,
    row_fields,
    silent_for,
)
from offload.core.task import Registry, TaskDef
from offload.core.tokens import (
    Scope,
    TokenInfo,
    TokenRecord,
    check_scopes,
    lookup_of,
    matches,
    new_token,
)
from offload.core.topics import (
    Message,
    Start,
    Subscription,
    TopicState,
    check_group_policy,
    check_key,
    check_offset,
    check_start,
    check_topic_name,
    is_group_queue,
)
from offload.core.workflow import DEFAULT_PARENT_RESULTS_LIMIT
from offload.handle import JobHandle
from offload.runtime.batch import batch_runner
from offload.runtime.context import current_job
from offload.runtime.delivery import deliver
from offload.runtime.hooks import Middlewares
from offload.task import AsyncTask, Call, Task, TaskDecorator, call
from offload.workflow import (
    MAP_TASK,
    REDUCE_TASK,
    MapReduce,
    Signature,
    from_nodes,
    task_name,
)
from offload.workflow_handle import ResultStream, WorkflowHandle, WorkflowProgress, WorkflowStatus

if TYPE_CHECKING:
    from offload.runtime.scheduler import Scheduler
    from offload.runtime.worker import Worker

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_URL = "sqlite:///offload.db"
#: Items per map job: big enough that a job's overhead (a claim, a commit) is small
#: beside its items' work, small enough that chunks spread over every worker.
DEFAULT_CHUNK_SIZE = 1000
#: Why a queue rate limit and a batch task cannot share a queue.
_BATCH_RATE = (
    "queue {queue!r} has a rate limit, which counts single starts and cannot count batch "
    "calls: put the batch task on a queue without one (a concurrency limit works)"
)


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
        idempotency_retention: float = DEFAULT_RETENTION,
        parent_results_limit: int = DEFAULT_PARENT_RESULTS_LIMIT,
        middleware: Iterable[Middleware] = (),
        shards: Mapping[str, str] | None = None,
        shard_map: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        #: Code run around each enqueue of this App and each run of its workers
        #: (`offload.Middleware`); `add_middleware` adds more.
        self.middleware = Middlewares(middleware)
        #: Seconds an idempotency key names its job (24 hours by default).
        self.idempotency_retention = check_retention(idempotency_retention)
        #: Bytes of JSON a job's parents' results may total when it starts (see
        #: `ParentResultsTooLarge`): a workflow passes references, not bulk data.
        self.parent_results_limit = check_count("parent_results_limit", parent_results_limit)
        self.backend: Backend
        if shards is None and shard_map is None:
            self.url = url or os.environ.get("OFFLOAD_URL") or DEFAULT_URL
            self.backend = open_backend(self.url)
        else:  # several PostgreSQL clusters, queues placed by the map (docs/sharding.md)
            if url is not None or shards is None:
                raise ConfigurationError("give either url, or shards (with a shard_map)")
            self.url = next(iter(shards.values()), "")
            self.backend = open_shards(shards, shard_map or {})
        self.auto_migrate = self.backend.name == "sqlite" if auto_migrate is None else auto_migrate
        self.payload_limit = payload_limit
        self.registry = Registry()
        self.schedules: dict[str, ScheduleDef] = {}
        #: Queue policies declared in code, written to the database at first use.
        self.queues: dict[str, QueuePolicy] = {}
        self._ready_pid = 0
        #: Per event loop, the coroutines' shared commits (`_insert_async`).
        self._loop_groups: weakref.WeakKeyDictionary[Any, LoopGroups[JobInsertParams, Inserted]]
        self._loop_groups = weakref.WeakKeyDictionary()
        self.registry.add_builtin(TaskDef(MAP_TASK, self._map_chunk, TaskOptions()))
        self.registry.add_builtin(TaskDef(REDUCE_TASK, self._reduce, TaskOptions()))

    def __repr__(self) -> str:
        return f"<offload.App {self.backend.name}:{self.backend.location}>"

    def add_middleware(self, middleware: Middleware) -> None:
        """Run `middleware` around this App's enqueues and its workers' jobs, after those
        registered already (a worker takes the App's middleware when it is made)."""
        self.middleware.add(middleware)

    # -- declaring tasks --------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R]) -> Task[P, R]: ...

    @overload
    def task(self, **keywords: Unpack[TaskKeywords]) -> TaskDecorator: ...

    def task(self, fn: Callable[..., Any] | None = None, **keywords: Unpack[TaskKeywords]) -> Any:
        """Register a function as a task: `@app.task` or `@app.task(queue="mail")`.

        Options (each `TaskOptions`' field of that name): `name` (default: the function's
        module and qualified name), `queue` ("default"), `priority` (0), `max_attempts` (3)
        or `retry` (an `offload.RetryPolicy`), `timeout`, `cpu_seconds`, `memory_mb`,
        `executor`, `concurrency`, `rate_limit`, `limit_key`, `sweep`, `unique`,
        `on_duplicate` ("return").

        `timeout` (wall-clock seconds), `cpu_seconds` and `memory_mb` (MiB) limit each run;
        a run over a limit fails with an error naming it. `executor` picks where jobs run;
        `cpu_seconds` and `memory_mb` need the process executor (a thread job past its
        timeout is only told to stop, and keeps its slot until it returns).

        `concurrency` (jobs running at once) and `rate_limit` ("20/s", "100/m", or
        (count, seconds)) hold across every worker, per `limit_key(*args, **kwargs)` when
        given. `sweep` is called with shed jobs' (args, kwargs) instead of re-admitting them.

        `unique` (True: by task and arguments, a key, or `offload.Unique`) makes an enqueue
        whose key a job holds return that job (`on_duplicate="raise"`: DuplicateJob).
        """
        options = task_options(keywords)

        def register(func: Callable[..., Any]) -> Task[..., Any]:
            return self._register(func, keywords.get("name"), options)

        return register if fn is None else register(fn)

    def batch_task(
        self,
        *,
        max_size: int = 100,
        max_wait: float = 2.0,
        group_by: Callable[..., Any] | None = None,
        **keywords: Unpack[BatchTaskKeywords],
    ) -> Callable[[Callable[[list[BatchItem]], Any]], Task[..., Any]]:
        """Register a batch task: `@app.batch_task(max_size=100, max_wait=2.0, group_by=f)`.

        Jobs are enqueued one by one as usual; a worker calls the function once with up to
        `max_size` due jobs of one group (`group_by(*args, **kwargs)`, or one group without
        it) as `BatchItem`s, once the group has `max_size` due jobs or its oldest has been
        due `max_wait` seconds. It returns one result per item, in order (`ItemFailed` in an
        item's place fails that item alone), or raises to fail every item; each item is
        retried under its own attempts. The other options are `task`'s; `timeout` and the
        process limits bound a call. Batch tasks take no task limits (`concurrency`,
        `rate_limit`, `limit_key`): limit the queue's concurrency instead.
        """
        options = task_options(keywords, BatchOptions(max_size, max_wait, group_by))
        if options.queue in self.queues and self.queues[options.queue].rate is not None:
            raise ConfigurationError(_BATCH_RATE.format(queue=options.queue))

        def register(func: Callable[[list[BatchItem]], Any]) -> Task[..., Any]:
            return self._register(func, keywords.get("name"), options)

        return register

    def _register(
        self, func: Callable[..., Any], name: str | None, options: TaskOptions
    ) -> Task[..., Any]:
        """Register `func` under `name` (default: its module and qualified name)."""
        task_name = name or f"{func.__module__}.{func.__qualname__}"
        runner = None if options.batch is None else batch_runner(task_name, func)
        definition = TaskDef(task_name, func, options, runner)
        self.registry.add(definition)
        limits = options.limits
        if limits is not None and self._ready_pid == process.pid:  # after first use
            self.backend.queues.declare({}, {task_name: limits})
        return Task(self, definition, EnqueueOptions())

    # -- topics -------------------------------------------------------------------------

    def publish(self, topic: str, message: Any, key: str | None = None, *, conn: Any = None) -> int:
        """Append `message` (JSON) to `topic`; return its offset once it is durable (with
        `conn`, in the caller's transaction: visible, and given its offset, at its commit).
        Publishes to one topic take turns until they commit, so offsets are in commit order."""
        return self.publish_many(topic, [message], keys=[key], conn=conn)[0]

    def publish_many(
        self,
        topic: str,
        messages: Sequence[Any],
        *,
        keys: Sequence[str | None] | None = None,
        conn: Any = None,
    ) -> list[int]:
        """Append `messages` to `topic` in one transaction, all or none (`keys`: one per
        message); return their offsets. Bad input raises ValidationError, storing nothing."""
        check_topic_name("topic", topic)
        # A str (or bytes) is a sequence too: its characters would be stored one by one.
        if isinstance(messages, str | bytes | bytearray) or not isinstance(messages, Sequence):
            raise ValidationError(
                f"messages must be a list of messages, got {shorten(messages)} "
                "(for one message, use publish)"
            )
        if keys is not None and (
            isinstance(keys, str | bytes | bytearray) or not isinstance(keys, Sequence)
        ):
            raise ValidationError(
                f"keys must be a list of keys (one per message), got {shorten(keys)}"
            )
        if keys is not None and len(keys) != len(messages):
            raise ValidationError(f"{len(keys)} keys given for {len(messages)} messages")
        texts = [
            serialization.dumps(value, f"message {i}", limit=self.payload_limit)
            for i, value in enumerate(messages)
        ]
        pairs = list(zip(keys or [None] * len(texts), texts, strict=True))
        for key, _ in pairs:
            check_key(key)
        self.ready()
        return self.backend.topics.publish(PublishParams(topic, pairs, conn))

    def subscriber(
        self,
        topic: str,
        *,
        group: str,
        start: Start = "latest",
        ordered_by_key: bool = False,
        publish_to: str | None = None,
        **keywords: Unpack[TaskKeywords],
    ) -> Callable[[Callable[[Message], R]], Callable[[Message], R]]:
        """Declare consumer group `group` of `topic`, run by the decorated function, which
        takes one `offload.Message`: `@app.subscriber("orders", group="mailer")`.

        The group receives every message published after it was first stored (at the app's
        first use), or from `start` ("earliest", an offset, a datetime); the workers serving
        it share them, at least once each, with the retries and dead handling of the task
        options (those of `App.task`, less `queue`: the group has its own). With
        `ordered_by_key`, a message is not started while an earlier one of its key is
        unfinished. With `publish_to`, a returned value other than None is published there
        (with the message's key) in the transaction that acknowledges the message, as are
        the messages it publishes with `offload.current_message().publish(topic, value)`.
        """
        check_topic_name("topic", topic)
        check_topic_name("group", group)
        if publish_to is not None:
            check_topic_name("publish_to topic", publish_to)
        if "queue" in keywords:
            raise ConfigurationError("a subscriber's jobs wait in its group's queue: drop queue=")
        subscription = Subscription(topic, group, check_start(start), ordered_by_key, publish_to)
        options = task_options({**keywords, "queue": subscription.queue})

        def register(fn: Callable[[Message], R]) -> Callable[[Message], R]:
            name = keywords.get("name") or f"{fn.__module__}.{fn.__qualname__}"
            self.registry.add(TaskDef(name, deliver(fn), options, subscription=subscription))
            if self._ready_pid == process.pid:  # after first use: store it now
                self._subscribe(subscription)
            return fn

        return register

    def topics(self) -> list[TopicState]:
        """Every topic: size, retention, and each group's cursor, lag, dead and skipped."""
        self.ready()
        return self.backend.topics.list()

    def replay(
        self,
        topic: str,
        group: str,
        *,
        offset: int | None = None,
        at: datetime | timedelta | None = None,
    ) -> int:
        """Move `group`'s cursor back (or on) to `offset`, or to before the first message
        published at `at` (a timedelta: that long ago): the messages after it are delivered
        again (with `at`, only those published at or after it, as for a group started from
        a time). Returns the cursor; GroupNotFound or OffsetOutOfRange move nothing."""
        check_topic_name("topic", topic)
        check_topic_name("group", group)
        if (offset is None) == (at is None):
            raise ValidationError("replay takes offset= or at=, one of the two")
        if offset is not None:
            check_offset(offset)
        self.ready()
        moment = None if at is None else check_moment("at", at, self.backend.now)
        return self.backend.topics.replay(ReplayParams(topic, group, offset, moment))

    def set_retention(
        self, topic: str, *, days: float | None = None, max_messages: int | None = None
    ) -> None:
        """Keep `topic`'s messages `days` days and at most `max_messages` of them (None: no
        bound of that kind; both None: kept for ever). The scheduler prunes the rest; a
        group that had not had them yet skips them, and its `skipped` count says so."""
        check_topic_name("topic", topic)
        number = not isinstance(days, bool) and isinstance(days, int | float)
        if days is not None and not (number and 0 < days < 1e6):
            raise ValidationError(f"days must be a number > 0, got {shorten(days)}")
        if max_messages is not None:
            check_count("max_messages", max_messages, ValidationError)
            if max_messages >= 2**63:
                raise ValidationError(f"max_messages must be below 2**63, got {max_messages}")
        seconds = None if days is None else float(days) * 86400.0
        self.ready()
        self.backend.topics.retain(RetentionParams(topic, seconds, max_messages))

    def _subscribe(self, subscription: Subscription) -> None:
        """Store a declared group unless it exists (its ordering follows the code)."""
        self.backend.topics.subscribe(
            SubscribeParams(
                subscription.topic,
                subscription.group,
                subscription.start,
                subscription.ordered_by_key,
            )
        )

    # -- queues -------------------------------------------------------------------------

    def queue(
        self,
        name: str,
        *,
        max_depth: int | None = None,
        admit_depth: int | None = None,
        admit_priority: int = 1,
        max_wait: float | None = None,
        overload: str = "refuse",
        shed_priority: int | None = None,
        shed_depth: int | None = None,
        resume_depth: int | None = None,
        aging: float = DEFAULT_AGING,
        concurrency: int | None = None,
        rate_limit: Rate | str | tuple[int, float] | None = None,
    ) -> QueuePolicy:
        """Declare a queue's policy: `app.queue("mail", max_depth=10_000)`.

        Stored in the database at this process's first use of it, so that every producer
        and worker sees the same policy; `offload queues set` changes it at run time until
        the code declares something different. See `QueuePolicy` for each bound.
        """
        policy = QueuePolicy(
            max_depth=max_depth,
            admit_depth=admit_depth,
            admit_priority=admit_priority,
            max_wait=max_wait,
            overload=overload,
            shed_priority=shed_priority,
            shed_depth=shed_depth,
            resume_depth=resume_depth,
            aging=aging,
            concurrency=concurrency,
            rate=None if rate_limit is None else Rate.parse(rate_limit),
        ).check()
        check_name("queue", name)
        check_group_policy(name, policy)
        if name in self.queues:
            raise ConfigurationError(f"queue {name!r} is already declared")
        if policy.rate is not None and any(
            d.options.batch is not None and d.options.queue == name
            for d in self.registry.definitions()
        ):
            raise ConfigurationError(_BATCH_RATE.format(queue=name))
        self.queues[name] = policy
        if self._ready_pid == process.pid:  # declared after first use: write it now
            self.backend.queues.declare({name: policy}, {})
        return policy

    def queue_policies(self) -> list[QueueState]:
        """Every stored queue policy (declared in code or set at run time), by name."""
        self.ready()
        return self.backend.queues.list()

    def set_queue(self, name: str, **changes: Any) -> QueuePolicy:
        """Change some of a queue's policy at run time, keeping the rest; returns the new
        policy. Settings as in `App.queue`; None clears a bound (or restores a default), and
        `resume_depth` follows a new `shed_depth` unless given. Read and written in one
        transaction; nothing is stored unless the whole policy is valid (`ValidationError`)
        and the queue known (`QueueNotFound`)."""
        declared = self._known_queue(name)
        params = QueueChangeParams(name, changes, declared or QueuePolicy())
        return self.backend.queues.change(params)

    def pause_queue(self, name: str) -> None:
        """Stop claims from a queue (running jobs finish; enqueues still land)."""
        self._known_queue(name)
        self.backend.queues.pause(name, True)

    def resume_queue(self, name: str) -> None:
        """Let workers claim from a paused queue again."""
        self._known_queue(name)
        self.backend.queues.pause(name, False)

    def _known_queue(self, name: str) -> QueuePolicy | None:
        """The stored policy of a known queue (None: known without one); `QueueNotFound`
        naming the known queues otherwise. Known: a stored or declared policy, jobs, or a
        live worker serving it."""
        self.ready()
        if not isinstance(name, str):
            raise ValidationError(f"queue must be a str, got {shorten(name)}")
        stored = self.backend.queues.get(name)
        if stored is not None:
            return stored.policy
        known = set(self.queues) | set(self.backend.jobs.counts())
        known |= {d.subscription.queue for d in self.registry.definitions() if d.subscription}
        known |= {q for w in self.worker_statuses() if not w.lost for q in w.queues}
        if name not in known:
            known |= {state.name for state in self.backend.queues.list()}
            raise QueueNotFound(name, sorted(known))
        return self.queues.get(name)

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
            priority=None if priority is None else check_priority(priority),
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
        self._check_cron_home()
        return Scheduler(self.backend, self.registry, list(self.schedules.values()), **options)

    def _cron_queue(self, schedule: ScheduleDef) -> str | None:
        """The queue a schedule's ticks go to (its own, else its task's; None: unknown task)."""
        if schedule.queue is not None:
            return schedule.queue
        if schedule.task in self.registry:
            return self.registry.get(schedule.task).options.queue
        return None

    def _check_cron_home(self) -> None:
        """On shards, refuse a schedule whose queue moved off home (its ticks fire there, and
        the home shard's fence would refuse every one): a move made by another process, or
        before the schedule was declared, is caught here at the scheduler's start."""
        if not isinstance(self.backend, ShardedBackend):
            return
        fences = self.backend.members[0].store.fences()
        for schedule in self.schedules.values():
            queue = self._cron_queue(schedule)
            if queue is not None and queue in fences:
                raise ConfigurationError(
                    f"cron schedule {schedule.name!r} enqueues into queue {queue!r}, which was "
                    f"moved to shard {fences[queue]!r}; cron schedules fire on the home shard "
                    f"{self.backend.names[0]!r}: move the queue back "
                    f"(App.move_queue({queue!r}, {self.backend.names[0]!r})) or give the "
                    "schedule a queue that lives there"
                )

    def cron_list(self) -> list[ScheduleState]:
        """Stored schedules with their last tick and last job's state."""
        self.ready()
        return self.backend.schedules.list()

    def schedule_statuses(self, now: datetime | None = None) -> list[ScheduleStatus]:
        """Stored schedules with their progress and next run; `now` overrides the DB clock."""
        self.ready()
        states = self.backend.schedules.list()
        now = self.backend.now() if now is None else now
        statuses = []
        for state in states:
            declared = self.schedules.get(state.name)
            statuses.append(
                ScheduleStatus(
                    **row_fields(state),
                    next_run=None if declared is None else declared.next_run(now, state.last_tick),
                )
            )
        return statuses

    def cron_pause(self, name: str, paused: bool = True) -> None:
        """Pause (or resume) a schedule for every scheduler replica, across restarts."""
        self.ready()
        try:
            self.backend.schedules.pause(check_text("schedule name", name), paused)
        except ScheduleNotFound:
            known = sorted(s.name for s in self.backend.schedules.list())
            raise ScheduleNotFound(name, known) from None

    def cron_run(self, name: str) -> JobHandle[Any]:
        """Enqueue a schedule's job once, now, outside its ticks."""
        sched = self.schedules.get(name)
        if sched is None:
            raise ScheduleNotFound(name, sorted(self.schedules))
        bound: Task[..., Any] = Task(self, self.registry.get(sched.task), EnqueueOptions())
        bound = bound.options(
            queue=sched.queue, priority=sched.priority, meta={"schedule": name, "manual": True}
        )
        return bound.enqueue(*sched.args, **sched.kwargs)

    # -- workflows --------------------------------------------------------------------

    def signature(self, task: str, /, *args: Any, **kwargs: Any) -> Signature:
        """A signature of a task by name, for a producer that does not import it; the
        name is looked up (and the arguments checked) when the workflow is enqueued."""
        return Signature(self, task, args, kwargs)

    def map(
        self,
        task: Task[..., Any] | str,
        items: Iterable[Any],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        combine: Task[..., Any] | str | None = None,
    ) -> MapReduce:
        """`task(item)` for each item, over the worker pool in jobs of `chunk_size` items;
        `.reduce(reducer)` adds `reducer(results)` once, `results` an iterator over every
        result in item order, streamed from the database. `combine(results_of_a_chunk)`
        reduces each chunk where it ran first (the reducer then iterates those values).
        `.enqueue()` stores it all in one transaction."""
        name = task_name(self, task)
        merge = None if combine is None else task_name(self, combine)
        return MapReduce(self, name, items, chunk_size, combine=merge)

    def workflow(self, workflow_id: int) -> WorkflowHandle:
        """A handle on a stored workflow; WorkflowNotFound if there is none."""
        self.ready()
        record = self.backend.workflows.get(workflow_id)
        return WorkflowHandle(self.backend, record.id, {n.name: n.job_id for n in record.nodes})

    def workflows(self, *, before_id: int | None = None, limit: int = 50) -> list[WorkflowSummary]:
        """Stored workflows, newest first, with how many nodes are in each state; page
        with `before_id` (the last id of the previous page)."""
        check_page(before_id, limit)
        self.ready()
        return self.backend.workflows.list(WorkflowListParams(before_id, limit))

    def workflow_status(self, workflow_id: int) -> WorkflowStatus:
        """A stored workflow with every node's state, its own state and its nodes per
        state (what `offload workflows show` and the HTTP API show); WorkflowNotFound."""
        self.ready()
        return WorkflowStatus.of(self.backend.workflows.get(workflow_id))

    def workflow_statuses(
        self, *, before_id: int | None = None, limit: int = 50
    ) -> list[WorkflowProgress]:
        """`workflows`, each with its state (what `offload workflows` lists)."""
        found = self.workflows(before_id=before_id, limit=limit)
        return [WorkflowProgress.of(summary) for summary in found]

    def cancel_workflow(self, workflow_id: int) -> list[JobChange]:
        """Cancel every unfinished node of a workflow (a running one is asked to stop);
        returns the jobs changed. WorkflowNotFound if there is none."""
        self.ready()
        return self.backend.workflows.cancel(workflow_id)

    def enqueue_workflow(
        self, nodes: Sequence[Mapping[str, Any]], *, name: str | None = None
    ) -> WorkflowHandle:
        """Store a DAG given as plain node descriptions (`offload.workflow.from_nodes`),
        all or none: the HTTP API's way in, for producers that do not import the tasks."""
        return from_nodes(self, nodes).enqueue(name=name)

    def _insert_workflow(self, params: WorkflowInsertParams) -> WorkflowInserted:
        """The one insert path of workflows and of jobs with `depends_on`; middleware sees
        each node as an insert of one job."""
        self.ready()
        if not self.middleware.enqueue:
            return self.backend.workflows.insert(params)
        events = [_enqueue_of(node.spec, 1, params.conn) for node in params.nodes]
        with self.middleware.around(events):
            nodes = [
                replace(node, spec=self._with_meta(node.spec, event))
                for node, event in zip(params.nodes, events, strict=True)
            ]
            done = self.backend.workflows.insert(replace(params, nodes=nodes))
            for event, job_id in zip(events, done.ids, strict=True):
                event.ids = [job_id]
        return done

    def _map_chunk(self, task: str, items: list[Any], combine: str | None) -> Any:
        """One chunk of a map: the task over each item, in order, combined if asked (an
        `async def` task's items are awaited one after another, on a loop of the chunk's)."""
        definition = self.registry.get(task)
        if definition.is_async:
            import asyncio  # only here: a plain worker process never loads asyncio

            results = asyncio.run(_each(definition.fn, items))
        else:
            results = [definition.fn(item) for item in items]
        return results if combine is None else self.registry.get(combine).fn(results)

    def _reduce(self, task: str, flat: bool) -> Any:
        """A map's reducer over its chunks' results, streamed from the database."""
        stream = ResultStream(self.backend, current_job().id, flat)
        return self.registry.get(task).fn(stream)

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

    def enqueue_many(
        self, task: str, calls: Sequence[Call], **options: Any
    ) -> list[JobHandle[Any]]:
        """Enqueue many jobs of a registered task by name, all or none; options as for
        `Task.options`, outcomes as for `Task.enqueue_many`."""
        bound: Task[..., Any] = Task(self, self.registry.get(task), EnqueueOptions())
        if options:
            bound = bound.options(**options)
        return bound.enqueue_many(calls)

    def job(self, job_id: int) -> JobHandle[Any]:
        """A handle on an existing job; raises JobNotFound if there is none."""
        self.ready()
        self.backend.jobs.get(job_id)
        return JobHandle(self.backend, job_id)

    def jobs(
        self,
        *,
        queue: str | None = None,
        state: JobState | str | None = None,
        task: str | None = None,
        before: datetime | timedelta | None = None,
        after: datetime | timedelta | None = None,
        error_type: str | None = None,
        args_contains: JSONValue = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """Jobs newest first; page with `before_id` = the last id of the previous page.

        `before`/`after` bound the enqueue time as in `retry_many` (a timedelta counts back
        from the database's now); `error_type` and `args_contains` as `JobSelection` says.
        """
        check_page(before_id, limit)
        self.ready()
        given = {
            "queue": queue,
            "state": state,
            "task": task,
            "before": before,
            "after": after,
            "error_type": error_type,
            "args_contains": args_contains,
        }
        selection = cast(JobSelection, {k: v for k, v in given.items() if v is not None})
        return self.backend.jobs.list(
            JobListParams(self._filter(selection), before_id=before_id, limit=limit)
        )

    def count_jobs(self, **selection: Unpack[JobSelection]) -> int:
        """How many jobs the selection matches, in any state (every job with none given):
        what a bulk operation would reach before narrowing to the states it accepts."""
        self.ready()
        return self.backend.jobs.count(self._filter(selection))

    def bulk(
        self, operation: Operation, *, batch_size: int = 1000, **selection: Unpack[JobSelection]
    ) -> Iterator[BulkProgress]:
        """`retry_many`, `cancel_many` or `purge` of a selection of any size, in batches of
        at most `batch_size` jobs, each its own short transaction, yielding progress after
        each; a selection matching millions of jobs never holds one long transaction.

        It walks the ids of the selected jobs in the states `operation` accepts, newest
        first, and applies the operation to each batch's ids with the selection again (a
        job that changed meanwhile is left alone). Not atomic as a whole: stopping the
        iteration stops between batches. Refuses an empty selection as `retry_many` does;
        nothing runs before the first `next()`.
        """
        if operation not in ACCEPTED:
            raise ValidationError(
                f"operation must be one of {', '.join(sorted(ACCEPTED))}, got {shorten(operation)}"
            )
        batch_size = check_count("batch_size", batch_size, ValidationError)
        self.ready()
        where = self._job_filter(operation, selection)
        return self._bulk(operation, where, batch_size)

    def _bulk(self, operation: Operation, where: JobFilter, size: int) -> Iterator[BulkProgress]:
        """`bulk` once checked: a keyset walk by id, one operation per batch."""
        jobs, accepted = self.backend.jobs, ACCEPTED[operation]
        matched = changed = 0
        before_id: int | None = None
        while True:
            ids = jobs.ids(JobIdsParams(where, accepted, before_id, size))
            if not ids:
                yield BulkProgress(matched, changed, done=True)
                return
            batch = replace(where, ids=ids)
            if operation == "retry":
                changed += len(jobs.retry_many(JobRetryManyParams(batch, self._budgets())))
            elif operation == "cancel":
                changed += len(jobs.cancel_many(batch))
            else:
                changed += jobs.purge(batch)
            matched += len(ids)
            before_id = ids[-1]
            if len(ids) < size:
                yield BulkProgress(matched, changed, done=True)
                return
            yield BulkProgress(matched, changed, done=False)

    def retry(self, job_id: int) -> Job:
        """Run a dead, cancelled or shed job again, with its task's attempt budget once more
        (attempts keep counting, so the error list reads as one history)."""
        self.ready()
        job = self.backend.jobs.get(job_id)
        budget = None
        if job.task in self.registry:
            budget = self.registry.get(job.task).options.retry.max_attempts
        return self.backend.jobs.retry(JobRetryParams(job_id, budget))

    def cancel(self, job_id: int) -> Job:
        """Cancel a queued job (a running one is asked to stop)."""
        self.ready()
        return self.backend.jobs.cancel(job_id)

    def retry_many(self, **selection: Unpack[JobSelection]) -> list[JobChange]:
        """`retry` every selected dead, cancelled or shed job, atomically (one statement);
        other jobs are left alone. Returns the jobs changed, by id."""
        self.ready()
        where = self._job_filter("retry", selection)
        return self.backend.jobs.retry_many(JobRetryManyParams(where, self._budgets()))

    def _budgets(self) -> dict[str, int]:
        """Each registered task's attempt budget, for a retry."""
        return {
            name: self.registry.get(name).options.retry.max_attempts
            for name in self.registry.names()
        }

    def cancel_many(self, **selection: Unpack[JobSelection]) -> list[JobChange]:
        """`cancel` every selected queued job and ask every selected running one to stop,
        atomically (one statement). Returns the jobs changed, by id."""
        self.ready()
        return self.backend.jobs.cancel_many(self._job_filter("cancel", selection))

    def purge(self, **selection: Unpack[JobSelection]) -> int:
        """Delete every selected succeeded, dead, cancelled or shed job (one statement);
        returns how many."""
        self.ready()
        return self.backend.jobs.purge(self._job_filter("purge", selection))

    def _job_filter(self, operation: str, selection: JobSelection) -> JobFilter:
        """The storage filter of a selection checked for a bulk `operation`."""
        check_selection(operation, selection)
        return self._filter(selection)

    def _filter(self, selection: JobSelection) -> JobFilter:
        """The storage filter of a selection (relative times by the DB clock)."""
        ids, state = selection.get("ids"), selection.get("state")
        if ids is not None and not all(type(i) is int for i in ids):
            raise ValidationError(f"job ids must be ints, got {shorten(list(ids))}")
        queue, task = selection.get("queue"), selection.get("task")
        bounds: dict[str, datetime] = {}
        for name, given in (("before", selection.get("before")), ("after", selection.get("after"))):
            if given is not None:
                bounds[name] = check_moment(name, given, self.backend.now)
        error_type, contained = selection.get("error_type"), selection.get("args_contains")
        if contained is not None:  # JSON within the payload limit, or ValidationError
            text = serialization.dumps(contained, "args_contains", limit=self.payload_limit)
            if NUL_ESCAPE in text:
                raise ValidationError("args_contains cannot hold the character U+0000")
        return JobFilter(
            ids=None if ids is None else list(ids),
            queue=None if queue is None else check_text("queue", queue),
            state=None if state is None else check_state(state),
            task=None if task is None else check_text("task", task),
            error_type=None if error_type is None else check_text("error_type", error_type),
            args_contains=contained,
            **bounds,
        )

    def workers(self) -> list[WorkerInfo]:
        """Registered workers with their last heartbeat (by the database clock)."""
        self.ready()
        return self.backend.workers.list()

    def duties(self) -> list[Leadership]:
        """The maintenance duties' leases ("rescue", "upkeep"): which worker or scheduler
        holds each, in which term, until when; a duty never taken yet is left out."""
        from offload.runtime.leader import DUTIES

        self.ready()
        found = (self.backend.leaders.read(name) for name in DUTIES)
        return [lease for lease in found if lease is not None]

    def worker_statuses(self, now: datetime | None = None) -> list[WorkerStatus]:
        """Registered workers, each with its silence and whether it is lost; `now` overrides
        the DB clock, the one heartbeats are stamped with."""
        self.ready()
        found = self.backend.workers.list()
        now = self.backend.now() if now is None else now  # read after the heartbeats
        statuses = []
        for info in found:
            silence = silent_for(now, info.heartbeat_at)
            statuses.append(
                WorkerStatus(**row_fields(info), silent_for=silence, lost=is_lost(silence))
            )
        return statuses

    def queue_counts(self) -> dict[str, dict[str, int]]:
        """Jobs per queue and state."""
        self.ready()
        return self.backend.jobs.counts()

    def census(self) -> Census:
        """Jobs per queue and state with the oldest due wait, and workers alive or lost:
        two statements, whatever the number of queues (what `/metrics` reads per scrape)."""
        self.ready()
        return Census(self.backend.jobs.census(), self.backend.workers.census(LOST_AFTER))

    def queue_statuses(self) -> list[QueueStatus]:
        """Each queue with jobs or a stored policy: counts per state, the live workers that
        serve it (a queue with available jobs and none is stranded), its policy and pause,
        drain rate, oldest due job's wait, limits in force and jobs they hold back."""
        counts = self.queue_counts()
        workers = self.worker_statuses()
        queues = self.backend.queues
        return queue_statuses(
            counts, workers, queues.list(), queues.stats(LOST_AFTER), queues.task_limits()
        )

    def queue_status(self, name: str) -> QueueStatus:
        """One queue's status (see `queue_statuses`); `QueueNotFound` for an unknown queue."""
        for status in self.queue_statuses():
            if status.name == name:
                return status
        self._known_queue(name)  # known only through a worker serving it, or declared
        serving = [w.id for w in self.worker_statuses() if not w.lost and name in w.queues]
        return QueueStatus(name, {}, sorted(serving))

    def stats(
        self,
        window: timedelta = timedelta(hours=1),
        *,
        queue: str | None = None,
        bucket_seconds: int = 60,
        roll: bool = True,
    ) -> list[StatsPoint]:
        """Chart points of the last `window`, one per `bucket_seconds` (a multiple of 60),
        oldest first, the last one the bucket of now (partial): jobs enqueued, started,
        succeeded, failed and dead, and the wait from due to first start at p50 and p95
        (`offload.core.stats`). Of one queue, or of all. Buckets with nothing are there with
        zeros. With `roll`, events not yet rolled up are rolled up first (a write); a
        worker's scheduler does it too, every `stats_interval`, so a reader that must not
        write (the dashboard) passes False. Buckets are kept `STATS_RETENTION` (8 days)."""
        points = check_window(window, bucket_seconds)
        name = None if queue is None else check_text("queue", queue)
        self.ready()
        if roll:
            self.backend.stats.roll()
        end = self.backend.now().timestamp()
        last = end // bucket_seconds * bucket_seconds
        since = last - (points - 1) * bucket_seconds
        rows = self.backend.stats.read(StatsReadParams(since, bucket_seconds, name))
        return chart(rows, end, points, bucket_seconds)

    # -- events -----------------------------------------------------------------------

    def events(
        self,
        *,
        after: EventCursor | str = EventCursor.START,
        job_id: int | None = None,
        queue: str | None = None,
        channel: str | None = None,
        limit: int = 500,
    ) -> list[Event]:
        """Committed events after the cursor `after` (or its text, an event's id), oldest
        first, at most `limit`, of the job, queue and channel given (any combination;
        none: every event). Safe to poll from any process: passing the cursor of the last
        event got never skips an event and never repeats one. Bad input raises
        ValidationError (BadEventId for cursor text that is not one)."""
        cursor = check_cursor(after)
        if job_id is not None and (type(job_id) is not int or not -(2**63) <= job_id < 2**63):
            raise ValidationError(f"job_id must be a job id (int), got {shorten(job_id)}")
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_EVENT_PAGE
        ):
            raise ValidationError(
                f"limit must be an int within [1, {MAX_EVENT_PAGE}], got {shorten(limit)}"
            )
        params = EventReadParams(
            after=cursor,
            job_id=job_id,
            queue=None if queue is None else check_text("queue", queue),
            channel=None if channel is None else check_channel(channel),
            limit=limit,
        )
        self.ready()
        return self.backend.events.read(params)

    def event_tail(self) -> EventCursor:
        """The cursor of the newest event readable now: a live stream that wants only what
        happens from now on starts after it."""
        self.ready()
        return self.backend.events.tail()

    def notify(self, channel: str, data: JSONValue) -> EventCursor:
        """Store the application's own event (kind `notify`) on `channel`, in the same
        sequence as the jobs' events and pruned with them; returns its cursor. `data` must
        be JSON within the payload limit; bad input raises ValidationError, storing nothing."""
        params = NotifyParams(
            check_channel(channel), serialization.dumps(data, "data", limit=self.payload_limit)
        )
        self.ready()
        return self.backend.events.notify(params)

    def event_signal(self) -> Listener:
        """A channel (`fileno`, `drain`, `close`) readable when events may have been added:
        LISTEN on PostgreSQL, a `PRAGMA data_version` watch on SQLite. A hint only: a
        reader also re-reads every `offload.core.events.EVENT_SAFETY_INTERVAL` seconds.
        The caller closes it."""
        self.ready()
        return self.backend.events.signal()

    # -- API tokens -------------------------------------------------------------------

    def create_token(self, name: str, scopes: Collection[Scope | str] | str) -> str:
        """Store a new API token named `name` with `scopes` (read, enqueue, admin; a list or
        "read,enqueue") and return it: the one time it is shown, as only its hash is kept.
        A taken name raises `TokenExists`, bad input `ValidationError`; neither stores."""
        check_name("token", name, ValidationError)
        allowed = check_scopes(scopes)
        self.ready()
        made = new_token()
        if not self.backend.tokens.create(
            TokenCreateParams(name, made.lookup, made.digest, allowed)
        ):
            raise TokenExists(name)
        return made.token

    def tokens(self) -> list[TokenRecord]:
        """Every live token: name, scopes, created, last used (to the minute); never the
        token or its hash."""
        self.ready()
        return self.backend.tokens.list()

    def revoke_token(self, name: str) -> None:
        """Delete a token: the next call presenting it is refused, in every process.
        `TokenNotFound` when no token has that name."""
        self.ready()
        if not isinstance(name, str) or not self.backend.tokens.revoke(name):
            raise TokenNotFound(name, [t.name for t in self.backend.tokens.list()])

    def authenticate(self, token: str) -> TokenInfo | None:
        """The name and scopes of a live token, None for any other value (malformed,
        unknown, revoked): one indexed read, and the hashes compared in constant time.
        Never raises for the value given; a database out of reach raises
        `BackendUnavailable`, as every call does."""
        lookup = lookup_of(token)
        if lookup is None:
            return None
        self.ready()
        found = self.backend.tokens.find(lookup)
        if found is None or not matches(token, found.digest):
            return None
        if found.stale:
            self.backend.tokens.touch(lookup)
        return TokenInfo(found.name, found.scopes)

    def tokens_configured(self) -> bool:
        """Whether any live token exists (an HTTP server refuses to listen beyond loopback
        without one)."""
        self.ready()
        return self.backend.tokens.any()

    # -- lifecycle --------------------------------------------------------------------

    def migrate(self) -> int:
        """Bring the database schema up to date; returns the version."""
        version = self.backend.schema.migrate()
        self._declare()
        self._ready_pid = process.pid
        return version

    def ready(self) -> None:
        """Check (or, with auto_migrate, create) the schema once per process."""
        if self._ready_pid == process.pid:
            return
        if self.auto_migrate:
            self.backend.schema.migrate()
        self.backend.schema.check()
        self._declare()
        self._ready_pid = process.pid

    def check(self) -> None:
        """Check now that the database answers and its schema is current, whatever an
        earlier `ready` found (a readiness probe); raises BackendError subclasses if not."""
        self.ready()
        self.backend.schema.check()

    def move_queue(self, queue: str, shard: str) -> None:
        """Send `queue`'s new jobs to `shard` from now on, on an App given `shards`
        (docs/sharding.md). Jobs already on the old shard stay and run there; producers
        with an older map are refused by the old shard's database and follow the move."""
        if not isinstance(self.backend, ShardedBackend):
            raise ConfigurationError("move_queue needs an App given shards=")
        check_name("queue", queue, ValidationError)
        if is_group_queue(queue):
            raise ValidationError(
                f"queue {queue!r} holds a consumer group's deliveries, which live on their "
                "topic's shard (the pump fills it there): it cannot move"
            )
        for schedule in self.schedules.values():
            if self._cron_queue(schedule) == queue and shard != self.backend.names[0]:
                raise ValidationError(
                    f"queue {queue!r} takes the jobs of cron schedule {schedule.name!r}, and "
                    "cron schedules fire on the home shard: it cannot move off it"
                )
        self.ready()
        if queue in self._topic_names():
            raise ValidationError(
                f"{queue!r} is a topic: a topic, its log and its groups live on one shard, "
                "and moving them is not supported yet"
            )
        self.backend.move(queue, shard)

    def _topic_names(self) -> set[str]:
        """Every topic this App subscribes or publishes to, and every topic stored."""
        names = {topic.name for topic in self.backend.topics.list()}
        for definition in self.registry.definitions():
            if definition.subscription is not None:
                names.add(definition.subscription.topic)
                if definition.subscription.publish_to is not None:
                    names.add(definition.subscription.publish_to)
        return names

    def _declare(self) -> None:
        """Write the queue policies, task limits and consumer groups declared so far."""
        definitions = self.registry.definitions()
        limits = {d.name: d.options.limits for d in definitions}
        if self.queues or any(limit is not None for limit in limits.values()):
            self.backend.queues.declare(self.queues, limits)
        for definition in definitions:
            if definition.subscription is not None:
                self._subscribe(definition.subscription)

    def worker(self, *, scheduler: bool | Scheduler = False, **options: Any) -> Worker:
        """A worker for this app, with a scheduler in a thread if `scheduler` (True: this
        app's, with the defaults; or one from `App.scheduler`); see
        `offload.runtime.worker.Worker` for the options."""
        from offload.runtime.worker import Worker

        self.ready()
        embedded = self.scheduler() if scheduler is True else scheduler or None
        options.setdefault("parent_results_limit", self.parent_results_limit)
        options.setdefault("message_limit", self.payload_limit)
        options.setdefault("middleware", self.middleware)
        return Worker(self.backend, self.registry, scheduler=embedded, **options)

    def close(self) -> None:
        """Close the database connections."""
        self.backend.close()

    def _use(self, url: str) -> None:
        """Point the App at another database, keeping its tasks, schedules and policies (a
        Django alias switched to its test database); the schema is checked at next use."""
        self.backend.close()
        self.url, self.backend, self._ready_pid = url, open_backend(url), 0
        self._loop_groups.clear()  # they insert through the backend they were made with

    def _insert(self, spec: JobSpec, payloads: Sequence[Payload], conn: Any) -> Inserted:
        """The one insert path of every enqueue (middleware around it, if any has an
        enqueue hook: one truth test otherwise)."""
        self.ready()
        if not self.middleware.enqueue:
            return self.backend.jobs.insert(JobInsertParams(spec, payloads, conn))
        event = _enqueue_of(spec, len(payloads), conn)
        with self.middleware.around([event]):
            params = JobInsertParams(self._with_meta(spec, event), payloads, conn)
            done = self.backend.jobs.insert(params)
            event.ids = done.ids
        return done

    def _with_meta(self, spec: JobSpec, event: Enqueue) -> JobSpec:
        """`spec` with the meta the `before_enqueue` hooks left (unchanged if they added
        nothing). Meta that is not JSON is a middleware's failure: logged, and the jobs
        are stored with the meta they had."""
        try:
            meta = serialization.dumps(event.meta, "meta")
        except SerializationError:
            self.middleware.errors.failed(self.middleware, "before_enqueue (meta)")
            return spec
        return spec if meta == spec.meta else replace(spec, meta=meta)

    async def _insert_async(self, spec: JobSpec, payloads: Sequence[Payload]) -> Inserted:
        """`_insert` from a coroutine, in a commit shared with the other coroutines of its
        loop that insert meanwhile (`offload.backends.group.LoopGroups`)."""
        import asyncio

        if self._ready_pid != process.pid:
            await asyncio.to_thread(self.ready)  # its first call reads the database
        loop = asyncio.get_running_loop()
        groups = self._loop_groups.get(loop)
        if groups is None:
            jobs = self.backend.jobs
            groups = LoopGroups(jobs.insert, jobs.insert_group, jobs.groupable)
            self._loop_groups[loop] = groups
        if not self.middleware.enqueue:
            return await groups.submit(JobInsertParams(spec, payloads))
        # The hooks run on the loop's thread, in the caller's context (its current span).
        event = _enqueue_of(spec, len(payloads), None)
        with self.middleware.around([event]):
            done = await groups.submit(JobInsertParams(self._with_meta(spec, event), payloads))
            event.ids = done.ids
        return done


def _enqueue_of(spec: JobSpec, count: int, conn: Any) -> Enqueue:
    """What middleware sees of an insert of `count` jobs of `spec`, before it."""
    return Enqueue(spec.task, spec.queue, count, serialization.loads(spec.meta), conn is not None)


async def _each(fn: Callable[[Any], Awaitable[Any]], items: list[Any]) -> list[Any]:
    """`await fn(item)` for each item in turn."""
    return [await fn(item) for item in items]


__all__ = ["App", "AsyncTask", "Call", "Task", "call"]
