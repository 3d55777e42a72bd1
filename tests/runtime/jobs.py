"""A running job built in memory, for tests of what the worker does around a job's run."""

from __future__ import annotations

from datetime import UTC, datetime

from offload.core.job import Job
from offload.core.states import JobState


def running_job(task: str = "t", queue: str = "q") -> Job:
    """Job 7 of `task` on `queue`, running its second attempt of three on worker "w"."""
    now = datetime.now(UTC)
    return Job(
        id=7,
        task=task,
        queue=queue,
        args=[],
        kwargs={},
        priority=0,
        state=JobState.RUNNING,
        attempt=2,
        max_attempts=3,
        run_at=now,
        enqueued_at=now,
        started_at=now,
        finished_at=None,
        lease_until=now,
        worker="w",
        result=None,
    )
