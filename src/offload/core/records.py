"""What the registry, the schedule and queue tables hold, as plain values the faces show
(no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from offload.core.flow import QueuePolicy
from offload.core.states import JobState


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
    #: Where producers send wake-ups (SQLite's datagram socket); None when not needed.
    wake: str | None = None


@dataclass(frozen=True, slots=True)
class StateCensus:
    """How many jobs one queue holds in one state (`JobStore.census`), by the database clock."""

    queue: str
    state: JobState
    jobs: int
    #: Seconds the oldest due, not yet started job in this state has waited since it became
    #: due; None when none is due (always None for states that do not wait to start).
    oldest_due: float | None


@dataclass(frozen=True, slots=True)
class WorkerCensus:
    """Registered workers counted by whether they still heartbeat (`WorkerStore.census`)."""

    alive: int
    lost: int
    #: Job slots (concurrency) summed over the live workers.
    alive_slots: int


@dataclass(frozen=True, slots=True)
class Leadership:
    """A maintenance duty's lease as it stands (`App.duties`): its holder and term, when
    the term began and when the lease ends (database clock), and the seconds left when it
    was read (<= 0: expired, any candidate may take it)."""

    name: str
    holder: str
    term: int
    since: datetime
    expires_at: datetime
    remaining: float

    def held_by(self, holder: str) -> bool:
        """Whether `holder` holds it and it has not expired."""
        return self.holder == holder and self.remaining > 0


@dataclass(frozen=True, slots=True)
class Census:
    """The whole system as a metrics scrape shows it: jobs per queue and state, workers."""

    states: list[StateCensus]
    workers: WorkerCensus


@dataclass(frozen=True, slots=True)
class JobChange:
    """One job a bulk operation changed, and the state it left the job in."""

    id: int
    queue: str
    state: JobState


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


@dataclass(frozen=True, slots=True)
class QueueState:
    """A queue's stored policy and whether it is paused (no claims while it is)."""

    name: str
    policy: QueuePolicy
    paused: bool
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """A queue's figures measured in the database (`QueueStore.stats`), by its clock."""

    name: str
    #: Seconds the oldest due, not yet started job has waited since it became due; None
    #: when no job is due.
    oldest_available: float | None
    #: Due jobs that a full concurrency limit (the queue's, or their task's or key's) keeps
    #: from starting now; rate limits are not counted.
    held: int
    #: Jobs completed per second: the sum of the live workers' measured rates.
    drain_rate: float
    #: Tasks with stored limits that have jobs waiting or running in the queue, by name.
    limited_tasks: list[str]
