"""The worker's executors together: each job goes to the executor its task asks for."""

from __future__ import annotations

import selectors
from collections import deque
from collections.abc import Callable, Iterable

from offload.core.job import Job
from offload.runtime.executor import Event, Executor


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

    def claimable(self) -> int:
        """Slots the worker should claim for: the primary executor's free ones."""
        return self.executors[self.primary].free()

    def capacity(self) -> int:
        """Jobs the primary executor holds when full."""
        return self.executors[self.primary].capacity()

    def start(self, jobs: Iterable[Job]) -> deque[Job]:
        """Hand jobs, in order, to executors with room; return those left waiting."""
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
