"""The `Backend` protocol: the named operations every storage engine provides.

Internal API. The App, the worker and the scheduler talk to storage only through these
operations; each one is atomic in the database. Payloads cross this boundary as JSON text,
already validated by the core serializer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from offload.core.job import Job, NewJob
from offload.core.schedule import ScheduleDef
from offload.core.states import JobState


@dataclass(frozen=True, slots=True)
class Lease:
    """A worker's hold on one attempt of a job: the fencing token for every later write."""

    id: int
    attempt: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What renewing leases learned: leases lost, and held jobs someone asked to cancel."""

    lost: list[int]
    cancel: list[int]


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """A running attempt's progress, as its task reported it."""

    id: int
    attempt: int
    fraction: float
    message: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended, written by `job_finish`.

    `state` is succeeded, retrying (then `delay` seconds until the next attempt), dead or
    cancelled; `error` is the JSON text of one error entry, `result` the JSON text of a result.
    """

    id: int
    attempt: int
    state: JobState
    result: str | None = None
    error: str | None = None
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Filters and keyset paging for `job_list`: newest first, ids below `before_id`."""

    queue: str | None = None
    state: JobState | None = None
    task: str | None = None
    before_id: int | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One row of the worker registry."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    wake: str | None = None


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """A schedule as stored: its definition summary and progress."""

    name: str
    cron: str
    tz: str
    task: str
    misfire: str
    paused: bool
    last_tick: datetime
    checked_at: datetime
    last_job_id: int | None
    last_state: JobState | None


class Listener(Protocol):
    """A wake-up channel: readable (by `select`) when jobs may have become available."""

    @property
    def address(self) -> str | None:
        """Where producers send wake-ups, kept in the worker registry (None: not needed)."""
        ...

    def fileno(self) -> int:
        """The descriptor to wait on."""
        ...

    def drain(self) -> None:
        """Consume pending wake-ups so the descriptor stops being readable."""
        ...

    def close(self) -> None:
        """Release the channel."""
        ...


class Backend(Protocol):
    """Storage operations; every one is one atomic database transaction."""

    @property
    def name(self) -> str:
        """Short name used in messages and metrics, e.g. "sqlite"."""
        ...

    @property
    def location(self) -> str:
        """Where the data lives, with any password removed; for messages."""
        ...

    @property
    def parallel_writes(self) -> bool:
        """Whether transactions from two threads run at once (PostgreSQL) or take turns on
        one lock (SQLite); the worker writes outcomes from a thread of their own only if so."""
        ...

    @property
    def schema_target(self) -> int:
        """The schema version this code needs."""
        ...

    def schema_version(self) -> int:
        """The schema version recorded in the database (0 before the first migration)."""
        ...

    def migrate(self) -> int:
        """Apply pending schema migrations; return the version reached."""
        ...

    def schema_check(self) -> None:
        """Raise SchemaMismatch unless the schema is exactly the version this code needs."""
        ...

    def now(self) -> datetime:
        """The database's clock, the one every cross-process time comparison uses."""
        ...

    def job_insert(self, jobs: Sequence[NewJob], conn: Any = None) -> list[int]:
        """Insert jobs in one transaction (the caller's, when `conn` is given); return ids."""
        ...

    def job_claim(self, worker: str, queue: str, limit: int, lease: float) -> list[Job]:
        """Atomically take up to `limit` due jobs of `queue`, highest priority first."""
        ...

    def job_heartbeat(self, worker: str, leases: Sequence[Lease], lease: float) -> Heartbeat:
        """Extend the given leases by `lease` seconds, in one statement; report the leases
        lost and the held jobs whose cancel was requested."""
        ...

    def job_progress(self, worker: str, reports: Sequence[ProgressReport]) -> None:
        """Store progress of attempts this worker holds (others are ignored)."""
        ...

    def job_finish(self, worker: str, outcomes: Sequence[Outcome]) -> list[int]:
        """Record outcomes of attempts this worker holds; return the ids whose lease was lost."""
        ...

    def job_release(self, worker: str, leases: Sequence[Lease]) -> int:
        """Return held jobs to `available` without spending their attempt (graceful stop)."""
        ...

    def job_get(self, job_id: int) -> Job:
        """One job by id; raise JobNotFound."""
        ...

    def job_list(self, where: JobFilter) -> list[Job]:
        """Jobs matching the filter, newest first."""
        ...

    def job_cancel(self, job_id: int) -> Job:
        """Cancel a queued job, or ask for a running one to stop; raise on a finished job."""
        ...

    def job_retry(self, job_id: int) -> Job:
        """Make a dead, cancelled or shed job available again with a fresh attempt budget."""
        ...

    def job_rescue(self) -> list[int]:
        """Put running jobs whose lease ran out back to available (or dead); return their ids."""
        ...

    def job_prune(self, older_than: Mapping[JobState, float]) -> int:
        """Delete finished jobs of each state older than the given seconds; return the count."""
        ...

    def queue_counts(self) -> dict[str, dict[str, int]]:
        """Number of jobs per queue and state."""
        ...

    def schedule_sync(self, schedules: Sequence[ScheduleDef]) -> None:
        """Record declared schedules (keeping their pause state and progress)."""
        ...

    def schedule_fire(
        self, sched: ScheduleDef, job: NewJob, down_after: float, now: datetime | None = None
    ) -> list[int]:
        """Enqueue `job` once for each due tick of `sched` (exactly once per tick, whatever
        the number of schedulers); return the new job ids. `now` overrides the DB clock."""
        ...

    def schedule_pause(self, name: str, paused: bool) -> None:
        """Pause or resume a schedule; raise ScheduleNotFound."""
        ...

    def schedule_list(self) -> list[ScheduleState]:
        """Every stored schedule with its progress and the state of its last job."""
        ...

    def cron_tick_prune(self, older_than: float) -> int:
        """Forget tick records older than the given seconds (beyond any catch-up window)."""
        ...

    def worker_register(self, info: WorkerInfo) -> None:
        """Record (or refresh) a worker in the registry."""
        ...

    def worker_heartbeat(self, worker: str) -> None:
        """Mark a worker alive now."""
        ...

    def worker_unregister(self, worker: str) -> None:
        """Remove a worker from the registry at its clean stop."""
        ...

    def worker_prune(self, older_than: float) -> int:
        """Forget workers silent for longer than the given seconds; return how many."""
        ...

    def worker_list(self) -> list[WorkerInfo]:
        """Every registered worker."""
        ...

    def listener(self) -> Listener:
        """A channel that becomes readable when jobs are enqueued or made available."""
        ...

    def close(self) -> None:
        """Close connections; the backend must not be used afterwards."""
        ...
