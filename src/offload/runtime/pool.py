"""The worker's executors together: each job goes to the executor its task asks for."""

from __future__ import annotations

import selectors
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from offload.core.errors import ConfigurationError, UnknownTask
from offload.core.job import Job
from offload.core.options import TaskOptions
from offload.core.task import Registry
from offload.runtime.executor import Event, Executor
from offload.runtime.processes.executor import ProcessExecutor


class ExecutorPool:
    """Routes jobs to executors by kind; looks like one executor to the worker loop.

    The primary executor (the worker's `--executor`) sets how many jobs the worker claims;
    the others take the jobs of tasks that ask for them, so an `async def` task never
    waits behind a CPU-bound one.
    """

    def __init__(
        self, primary: str, executors: dict[str, Executor], route: Callable[[Job], str]
    ) -> None:
        self.primary = primary
        self.executors = executors
        self.route = route
        #: Called with each batch of jobs handed to an executor (None: nobody asks).
        self.on_start: Callable[[list[Job]], None] | None = None

    def claimable(self) -> int:
        """Slots the worker should claim for: the primary executor's free ones."""
        return self.executors[self.primary].free()

    def capacity(self) -> int:
        """Jobs the primary executor holds when full."""
        return self.executors[self.primary].capacity()

    def start(self, jobs: Iterable[Job]) -> deque[Job]:
        """Hand jobs, in order, to executors with room (telling `on_start` of each batch);
        return those left waiting."""
        if len(self.executors) == 1:  # the usual worker: no job to route
            (executor,) = self.executors.values()
            rest = deque(jobs)
            batch = [rest.popleft() for _ in range(min(executor.free(), len(rest)))]
            if batch:
                executor.submit(batch)
                if self.on_start is not None:
                    self.on_start(batch)
            return rest
        room = {kind: executor.free() for kind, executor in self.executors.items()}
        batches: dict[str, list[Job]] = {}
        waiting: deque[Job] = deque()
        for job in jobs:
            kind = self.route(job)
            if room[kind] > 0:
                room[kind] -= 1
                batches.setdefault(kind, []).append(job)
            else:
                waiting.append(job)
        for kind, batch in batches.items():
            self.executors[kind].submit(batch)
            if self.on_start is not None:  # per batch: the loop calls this every turn
                self.on_start(batch)
        return waiting

    def poll(self) -> list[Event]:
        return [event for ex in self.executors.values() for event in ex.poll()]

    def waitables(self) -> list[int]:
        return [w for ex in self.executors.values() for w in ex.waitables()]

    def running(self) -> list[Job]:
        return [job for ex in self.executors.values() for job in ex.running()]

    def cancel(self, job_id: int) -> None:
        for ex in self.executors.values():
            ex.cancel(job_id)

    def next_deadline(self) -> float | None:
        deadlines = [d for ex in self.executors.values() if (d := ex.next_deadline()) is not None]
        return min(deadlines, default=None)

    def stop_all(self) -> list[Job]:
        return [job for ex in self.executors.values() for job in ex.stop_all()]

    def close(self) -> None:
        for ex in self.executors.values():
            ex.close()


class Waiter:
    """Sleeps until one of a set of descriptors is readable, keeping one selector while the
    set stays the same (building one per wait costs more than the wait itself)."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._fds: tuple[int, ...] = ()

    def wait(self, fds: list[int], timeout: float | None) -> set[int]:
        """The descriptors among `fds` that are readable within `timeout` seconds."""
        key = tuple(fds)
        if key != self._fds:
            self._selector.close()
            self._selector = selectors.DefaultSelector()
            for fd in dict.fromkeys(fds):
                self._selector.register(fd, selectors.EVENT_READ)
            self._fds = key
        return {k.fd for k, _ in self._selector.select(timeout)}

    def close(self) -> None:
        self._selector.close()


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """What a worker's executors are built from: its primary kind, sizes and limits."""

    registry: Registry
    primary: str
    concurrency: int
    async_concurrency: int
    app_path: str | None
    result_limit: int | None
    max_jobs_per_child: int | None
    max_child_memory_mb: float | None


def task_options(registry: Registry, job: Job) -> TaskOptions | None:
    """The options of a job's task, or None when no task of that name is registered."""
    try:
        return registry.get(job.task).options
    except UnknownTask:
        return None


def options_lookup(registry: Registry) -> Callable[[Job], TaskOptions | None]:
    """`task_options` of `registry`, remembered per task name, as `Router` remembers kinds
    (a worker's tasks are registered before it starts); the process executor asks per job."""
    found: dict[str, TaskOptions | None] = {}

    def options_of(job: Job) -> TaskOptions | None:
        try:
            return found[job.task]
        except KeyError:
            found[job.task] = options = task_options(registry, job)
            return options

    return options_of


def build_pool(spec: PoolSpec) -> ExecutorPool:
    """The primary executor, plus one per other kind that a registered task asks for."""
    kinds = {spec.primary}
    for definition in spec.registry.definitions():
        kinds.add(definition.options.executor or ("async" if definition.is_async else ""))
    kinds.discard("")
    executors: dict[str, Executor] = {}
    for kind in sorted(kinds):
        if kind == "process":
            if not spec.app_path:
                raise ConfigurationError(
                    "the process executor needs the app as an import path (app_path='module:app')"
                )
            executors[kind] = ProcessExecutor(
                spec.app_path,
                spec.concurrency,
                options_lookup(spec.registry),
                result_limit=spec.result_limit,
                max_jobs_per_child=spec.max_jobs_per_child,
                max_child_memory_mb=spec.max_child_memory_mb,
            )
        elif kind == "thread":
            from offload.runtime.inprocess import ThreadExecutor

            executors[kind] = ThreadExecutor(spec.registry, spec.concurrency, spec.result_limit)
        else:  # asyncio is loaded only by workers that run async tasks
            from offload.runtime.inprocess import AsyncExecutor

            size = spec.concurrency if spec.primary == "async" else spec.async_concurrency
            executors[kind] = AsyncExecutor(spec.registry, size, spec.result_limit)
    return ExecutorPool(spec.primary, executors, Router(spec.registry, spec.primary))


class Router:
    """The executor a job runs in: its task's choice, async for `async def`, else the
    worker's own kind; remembered per task name."""

    def __init__(self, registry: Registry, primary: str) -> None:
        self.registry = registry
        self.primary = primary
        self._kinds: dict[str, str] = {}

    def __call__(self, job: Job) -> str:
        kind = self._kinds.get(job.task)
        if kind is None:
            try:
                definition = self.registry.get(job.task)
            except UnknownTask:
                return self.primary  # it fails there with a clear error
            kind = definition.options.executor or ("async" if definition.is_async else self.primary)
            self._kinds[job.task] = kind
        return kind
