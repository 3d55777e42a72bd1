"""Job states and the transitions DESIGN.md section 1 allows."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a job is in its life; stored as the lower-case name."""

    WAITING = "waiting"
    SCHEDULED = "scheduled"
    AVAILABLE = "available"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"
    SHED = "shed"

    @property
    def finished(self) -> bool:
        """True for states a job leaves only by an explicit retry."""
        return self in FINISHED


FINISHED = frozenset({JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED})
#: States from which a job may be cancelled without asking a worker.
QUEUED = frozenset(
    {JobState.WAITING, JobState.SCHEDULED, JobState.AVAILABLE, JobState.RETRYING, JobState.SHED}
)
#: States an explicit retry moves back to `available`.
RETRYABLE = frozenset({JobState.DEAD, JobState.CANCELLED, JobState.SHED})
#: States a claim may take a job from once its run_at has come.
CLAIMABLE = frozenset({JobState.AVAILABLE, JobState.SCHEDULED, JobState.RETRYING})
