"""What becomes of a job after one run: succeeded, cancelled, dead, or retrying after a delay.

A pure decision (no I/O, no clock), so every executor's outcome is judged by one rule that
tests can check without a worker.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from offload.core.options import RetryPolicy
from offload.core.states import JobState


class RunEnd(StrEnum):
    """How one run of a job ended, as far as the retry decision is concerned."""

    SUCCEEDED = "succeeded"
    #: The task raised, or a limit stopped it: retried while attempts remain.
    FAILED = "failed"
    #: Retrying cannot help (the task is unknown to the worker): dead at once.
    PERMANENT = "permanent"
    #: The job was asked to stop: cancelled, whatever attempts remain.
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Decision:
    """The job's next state; `delay` is the seconds before the next attempt when retrying."""

    state: JobState
    delay: float | None = None


def next_state(
    attempt: int,
    max_attempts: int,
    policy: RetryPolicy,
    end: RunEnd,
    rng: random.Random | None = None,
) -> Decision:
    """Decide after run `attempt` (1-based) of a job allowed `max_attempts` runs (the job's
    own count, which an enqueue may override); `policy` gives the backoff."""
    if end is RunEnd.SUCCEEDED:
        return Decision(JobState.SUCCEEDED)
    if end is RunEnd.CANCELLED:
        return Decision(JobState.CANCELLED)
    if end is RunEnd.PERMANENT or attempt >= max_attempts:
        return Decision(JobState.DEAD)
    return Decision(JobState.RETRYING, policy.delay(attempt, rng))
