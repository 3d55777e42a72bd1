"""Task definitions and the registry a worker looks tasks up in (no I/O)."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from offload.core import serialization
from offload.core.errors import (
    ArgumentsMismatch,
    ConfigurationError,
    UnknownTask,
    ValidationError,
    shorten,
)
from offload.core.flow import limit_key_problem
from offload.core.job import JobSpec
from offload.core.models import ModelParam, dump_models, load_models, model_params
from offload.core.options import EnqueueOptions, TaskOptions, check_name
from offload.core.shaping import DEFAULT_RETENTION, KeyRules, Unique
from offload.core.topics import Subscription


@dataclass(frozen=True, slots=True)
class TaskDef:
    """A registered function under a stable name, with its default options."""

    name: str
    fn: Callable[..., Any]
    options: TaskOptions
    #: What executors call instead of `fn`, when set: a batch task's call of `fn` with
    #: the items of one claim (see offload.runtime.batch).
    runner: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    #: The consumer group whose deliveries it runs, for a subscriber (`App.subscriber`).
    subscription: Subscription | None = field(default=None, compare=False)
    #: The function's signature, read once (None: it has none Python can read, so calls
    #: are not checked).
    signature: inspect.Signature | None = field(init=False, repr=False, compare=False)
    #: (fewest, most) positional arguments when a call without keywords needs no more than
    #: their count to bind (None: `check_args` always binds).
    arity: tuple[int, int] | None = field(init=False, repr=False, compare=False)
    #: No limits and no batch groups: `limit_key` and `group_key` are None for every call.
    keyless: bool = field(init=False, repr=False, compare=False)
    #: Parameters annotated with a pydantic model (`offload.core.models`).
    models: tuple[ModelParam, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.options.executor is None and self.is_async:
            self.options.check_process_limits("the asyncio executor, where async def tasks run")
        try:
            signature: inspect.Signature | None = inspect.signature(self.fn)
        except (TypeError, ValueError):  # some builtins and C callables have none
            signature = None
        if self.options.batch is not None:  # its jobs' arguments are its items', any
            signature = None
        object.__setattr__(self, "signature", signature)
        object.__setattr__(
            self, "arity", None if signature is None else _positional_range(signature)
        )
        opts = self.options
        keyless = opts.concurrency is None and opts.rate_limit is None and opts.batch is None
        object.__setattr__(self, "keyless", keyless)
        object.__setattr__(self, "models", model_params(self.fn, signature))

    def check_args(
        self, args: Sequence[Any], kwargs: dict[str, Any], index: int | None = None
    ) -> None:
        """Raise ArgumentsMismatch unless the function can take these arguments (`index`:
        the call's place in a batch). Positional-only calls are checked by counting."""
        arity = self.arity
        if arity is not None and not kwargs and arity[0] <= len(args) <= arity[1]:
            return
        reason = self.mismatch(args, kwargs)
        if reason is not None:
            raise ArgumentsMismatch(self.name, reason, index)

    def mismatch(self, args: Sequence[Any], kwargs: dict[str, Any]) -> str | None:
        """Why the function cannot take these arguments, or None when it can."""
        if self.signature is None:
            return None
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            return f"{exc}; it takes {_bare(self.signature)}"
        return None

    def limit_key(
        self, args: Sequence[Any], kwargs: dict[str, Any], index: int | None = None
    ) -> str | None:
        """The key this job's task limits count it under: the task's `limit_key(*args,
        **kwargs)`, "" for a task limited as a whole, None for a task without limits. A key
        function that raises or returns a bad key raises ValidationError (`index`: the
        call's place in a batch), so the enqueue stores nothing."""
        opts = self.options
        if opts.concurrency is None and opts.rate_limit is None:
            return None
        if opts.limit_key is None:
            return ""
        where = "" if index is None else f" (call {index})"
        try:
            key: object = opts.limit_key(*args, **kwargs)
        except Exception as exc:
            raise ValidationError(
                f"task {self.name!r}: limit_key raised {type(exc).__name__}: "
                f"{shorten(str(exc))}{where}; nothing was stored"
            ) from exc
        problem = limit_key_problem(key)
        if problem is None and isinstance(key, str):
            return key
        raise ValidationError(f"task {self.name!r}: limit_key {problem}{where}; nothing was stored")

    def group_key(
        self, args: Sequence[Any], kwargs: dict[str, Any], index: int | None = None
    ) -> str | None:
        """The group a batch task's job is gathered in (see `BatchOptions.group_key`);
        None for other tasks."""
        batch = self.options.batch
        return None if batch is None else batch.group_key(self.name, args, kwargs, index)

    def prepare(
        self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any], skip: int = 0
    ) -> tuple[tuple[Any, ...] | list[Any], dict[str, Any]]:
        """The arguments as they are stored: as given, but for pydantic model arguments,
        validated and dumped to JSON (plain JSON is checked after). `args` start at
        parameter `skip` (see `dump_models`)."""
        if not self.models:
            return args, kwargs
        return dump_models(self.name, self.models, args, kwargs, skip)

    @property
    def target(self) -> Callable[..., Any]:
        """What an executor calls with a job's arguments."""
        if self.runner is not None:
            return self.runner
        return self._with_models if self.models else self.fn

    def _with_models(self, *args: Any, **kwargs: Any) -> Any:
        """Call `fn` with its model arguments rebuilt from their JSON form."""
        given, named = load_models(self.models, args, kwargs)
        return self.fn(*given, **named)

    @property
    def is_async(self) -> bool:
        """True for `async def` tasks."""
        return inspect.iscoroutinefunction(self.fn)

    def unique(self, over: EnqueueOptions) -> Unique | None:
        """The uniqueness rule of jobs enqueued with `over`, if any."""
        if over.unique is None:
            return self.options.unique
        return over.unique if isinstance(over.unique, Unique) else None

    def unique_key(
        self, rule: Unique | None, args: Sequence[Any], kwargs: dict[str, Any]
    ) -> str | None:
        """A job's unique key under `rule` (arguments already checked to bind)."""
        return None if rule is None else rule.key_for(self.name, self.signature, args, kwargs)

    def spec(self, over: EnqueueOptions, retention: float = DEFAULT_RETENTION) -> JobSpec:
        """What jobs of this task enqueued with `over` share: the one place a job is built.
        `retention`: how long an idempotency key names its job, in seconds."""
        opts = self.options
        unique = self.unique(over)
        rules = None
        if unique is not None or over.idempotency_key is not None or over.replace is not None:
            rules = KeyRules(
                unique_states=unique.held_in if unique is not None else (),
                unique_period=None if unique is None else unique.period,
                on_duplicate=over.on_duplicate or opts.on_duplicate,
                replace_running=over.replace_running,
                retention=retention,
            )
        return JobSpec(
            task=self.name,
            queue=over.queue or opts.queue,
            priority=opts.priority if over.priority is None else over.priority,
            max_attempts=over.max_attempts or opts.retry.max_attempts,
            delay=over.delay,
            run_at=over.run_at,
            meta="{}" if over.meta is None else serialization.dumps(over.meta, "meta"),
            rules=rules,
            channel=over.channel,
        )


def _positional_range(signature: inspect.Signature) -> tuple[int, int] | None:
    """The range of positional argument counts that bind when no keyword is given, or None
    when a keyword-only parameter is required (then only `bind` can tell)."""
    fewest = most = 0
    for param in signature.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            most = sys.maxsize
        elif param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            most += 1
            fewest += param.default is param.empty
        elif param.kind is param.KEYWORD_ONLY and param.default is param.empty:
            return None
    return fewest, most


def _bare(signature: inspect.Signature) -> str:
    """The signature without annotations, as an error message shows it: `(user_id, *, x=1)`."""
    empty = inspect.Parameter.empty
    params = [p.replace(annotation=empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=params, return_annotation=empty))


class Registry:
    """Task name -> definition; names are stable identifiers, not import paths."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskDef] = {}
        #: offload's own tasks (a map's chunk, a reducer): found by `get`, but not listed,
        #: so listings, warnings and copies of a registry show the application's only.
        self._builtins: dict[str, TaskDef] = {}

    def add_builtin(self, definition: TaskDef) -> None:
        """Register one of offload's own tasks (its name starts with "offload.")."""
        self._builtins[definition.name] = definition

    def add(self, definition: TaskDef) -> None:
        check_name("task", definition.name)
        existing = self._tasks.get(definition.name)
        if existing is not None and existing.fn is not definition.fn:
            raise ConfigurationError(f"task name {definition.name!r} is already registered")
        self._tasks[definition.name] = definition

    def get(self, name: str) -> TaskDef:
        try:
            return self._tasks[name]
        except KeyError:
            builtin = self._builtins.get(name)
            if builtin is None:
                raise UnknownTask(name, sorted(self._tasks)) from None
            return builtin

    def __contains__(self, name: object) -> bool:
        return name in self._tasks or name in self._builtins

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def definitions(self) -> list[TaskDef]:
        return [self._tasks[name] for name in sorted(self._tasks)]
