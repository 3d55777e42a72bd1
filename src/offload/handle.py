"""`JobHandle`: what an enqueue returns; polls the job's status and result."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from offload.core.errors import JobFailed, ResultTimeout
from offload.core.job import Job
from offload.core.states import JobState

if TYPE_CHECKING:
    from offload.backends.base import Backend

R = TypeVar("R")


class JobHandle(Generic[R]):
    """A job by id; every method reads the database afresh.

    `duplicate` is True when the enqueue that returned it stored nothing because a job with
    its unique or idempotency key existed: this is that job.
    """

    __slots__ = ("_backend", "duplicate", "id")

    def __init__(self, backend: Backend, job_id: int, duplicate: bool = False) -> None:
        self._backend = backend
        self.id = job_id
        self.duplicate = duplicate

    def __repr__(self) -> str:
        return f"JobHandle(id={self.id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def job(self) -> Job:
        """The stored job; raises JobNotFound once it was pruned."""
        return self._backend.jobs.get(self.id)

    def status(self) -> JobState:
        """The job's current state."""
        return self.job().state

    def wait(self, timeout: float | None = None) -> Job:
        """Block until the job is finished (succeeded, dead or cancelled); return it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.002
        while True:
            job = self.job()
            if job.state.finished:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeout(self.id, timeout or 0.0, str(job.state))
            left = pause if deadline is None else min(pause, max(deadline - time.monotonic(), 0))
            time.sleep(left)
            pause = min(pause * 1.5, 0.2)

    async def wait_async(self, timeout: float | None = None) -> Job:
        """`wait` for asyncio code: reads run in a thread, pauses on the loop."""
        import asyncio  # loaded on first use: workers and fork servers never need it

        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.002
        while True:
            job = await asyncio.to_thread(self.job)
            if job.state.finished:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeout(self.id, timeout or 0.0, str(job.state))
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.2)

    async def result_async(self, timeout: float | None = None) -> R:
        """`result` for asyncio code."""
        return self._result_of(await self.wait_async(timeout))

    def result(self, timeout: float | None = None) -> R:
        """The job's return value once it succeeded; raises JobFailed if it ended otherwise."""
        return self._result_of(self.wait(timeout))

    def _result_of(self, job: Job) -> R:
        if job.state is not JobState.SUCCEEDED:
            raise JobFailed(self.id, str(job.state), job.last_error)
        value: Any = job.result
        return value  # type: ignore[no-any-return]
