"""Middleware: code that runs around each enqueue and each run of a job, in one place
(Dramatiq's middleware, Oban's telemetry events). Plain values and a base class, no I/O.

A producer (the App, whatever face calls it: a task's `enqueue`, the HTTP API, a workflow)
calls `before_enqueue` and `after_enqueue` around each insert. A worker's supervisor (the
process that claims and records outcomes, whatever executor runs the job) calls
`job_started` as it hands each job to an executor and `job_ended` as it decides each run's
outcome, then `job_retrying` when that outcome is a retry; a run whose lease it lost (another
attempt owns the job: no outcome of it is recorded) gets `job_lost` instead of `job_ended`.
Hooks run on the thread that enqueues or on the worker loop's: each must be cheap. A hook
that raises is logged (once per hook and minute, not once per job) and changes nothing else:
the job is stored and its outcome recorded as if the middleware were not there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from offload.core.job import Job
from offload.core.states import JobState


@dataclass(slots=True)
class Enqueue:
    """One insert of jobs of one task (a call of `enqueue`, `enqueue_many`, a workflow's
    node), as middleware sees it before and after it is stored."""

    task: str
    queue: str
    #: Jobs stored by this insert (1 for `enqueue`; a batch's size for `enqueue_many`).
    count: int
    #: The jobs' meta, which `before_enqueue` may add to: stored with each job, read back
    #: as `Job.meta` by the worker and every attempt after a retry.
    meta: dict[str, Any]
    #: True when the jobs are stored in the caller's transaction (`conn=`): they exist for
    #: others only once it commits.
    transactional: bool = False
    #: The stored jobs' ids, in order, once stored (set before `after_enqueue`).
    ids: Sequence[int] = ()
    #: Why the insert failed (set before `after_enqueue`); None when it succeeded.
    error: BaseException | None = None
    #: Room for a middleware's own state between its two hooks (a span, a start time),
    #: under a key of its own.
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class JobStarted:
    """A job handed to an executor by a worker (each job of a batch call on its own). Not
    frozen: a frozen dataclass costs a worker a microsecond more per job to build."""

    job: Job
    #: The worker's clock (`time.time()`) at the hand-over.
    at: float


@dataclass(slots=True)
class JobEnded:
    """How a run ended, as its worker records it (not frozen, as `JobStarted`)."""

    job: Job
    #: What the worker records: SUCCEEDED, RETRYING (another attempt follows after
    #: `retry_in`), DEAD or CANCELLED.
    outcome: JobState
    #: Seconds the run took, measured where it ran; None when not measured (a job
    #: cancelled before it started, a run stopped).
    duration: float | None
    #: The worker's clock (`time.time()`) when the end was seen.
    at: float
    #: The error ({"type", "message", "traceback"}) of a run that did not succeed.
    error: dict[str, Any] | None = None
    #: Seconds until the next attempt when `outcome` is RETRYING, else None.
    retry_in: float | None = None

    @property
    def succeeded(self) -> bool:
        """Whether the run succeeded."""
        return self.outcome is JobState.SUCCEEDED


@dataclass(slots=True)
class JobLost:
    """A run whose lease its worker lost, as the heartbeat found it (another attempt owns
    the job now): no `job_ended` follows for it, whatever the run still does."""

    job: Job
    #: The worker's clock (`time.time()`) when the loss was seen.
    at: float


class Middleware:
    """Subclass and override the hooks you need (each is a no-op here); register it with
    `App(middleware=[...])` or `App.add_middleware`. Producers and workers of the App call
    it; see the module docstring for where and when."""

    def before_enqueue(self, enqueue: Enqueue) -> None:
        """Jobs are about to be stored; `enqueue.meta` may be added to."""

    def after_enqueue(self, enqueue: Enqueue) -> None:
        """The insert is over: `enqueue.ids` were stored, or `enqueue.error` says why not."""

    def job_started(self, started: JobStarted) -> None:
        """A worker handed a job to an executor to run."""

    def job_ended(self, ended: JobEnded) -> None:
        """A run ended with the outcome the worker records."""

    def job_retrying(self, ended: JobEnded) -> None:
        """A run failed and another attempt follows (after `job_ended`, same event)."""

    def job_lost(self, lost: JobLost) -> None:
        """A started run's lease was lost: it gets no `job_ended` (its outcome is not
        recorded; the job's next attempt is another run, with events of its own)."""


__all__ = ["Enqueue", "JobEnded", "JobLost", "JobStarted", "Middleware"]
