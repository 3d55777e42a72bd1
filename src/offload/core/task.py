"""Task definitions and the registry a worker looks tasks up in (no I/O)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from offload.core import serialization
from offload.core.errors import ConfigurationError, UnknownTask
from offload.core.job import JobSpec
from offload.core.options import EnqueueOptions, TaskOptions, check_name


@dataclass(frozen=True, slots=True)
class TaskDef:
    """A registered function under a stable name, with its default options."""

    name: str
    fn: Callable[..., Any]
    options: TaskOptions

    def __post_init__(self) -> None:
        if self.options.executor is None and self.is_async:
            self.options.check_process_limits("the asyncio executor, where async def tasks run")

    @property
    def is_async(self) -> bool:
        """True for `async def` tasks."""
        return inspect.iscoroutinefunction(self.fn)

    def spec(self, over: EnqueueOptions) -> JobSpec:
        """What jobs of this task enqueued with `over` share: the one place a job is built."""
        opts = self.options
        return JobSpec(
            task=self.name,
            queue=over.queue or opts.queue,
            priority=opts.priority if over.priority is None else over.priority,
            max_attempts=over.max_attempts or opts.retry.max_attempts,
            delay=over.delay,
            run_at=over.run_at,
            meta="{}" if over.meta is None else serialization.dumps(over.meta, "meta"),
        )


class Registry:
    """Task name -> definition; names are stable identifiers, not import paths."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskDef] = {}

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
            raise UnknownTask(name, sorted(self._tasks)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def definitions(self) -> list[TaskDef]:
        return [self._tasks[name] for name in sorted(self._tasks)]
