"""What every face shows about workers and schedules, and the rules behind it (no I/O).

The CLI, an HTTP API and a dashboard must agree on when a worker counts as lost and when a
schedule runs next, so the rules live here and `App` applies them with the database clock;
faces only format the records. The records are flat (no storage rows inside) so that faces
can serialise them field by field and the core does not import the storage layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from offload.core.states import JobState

#: A worker heartbeats at least every 10 s; this much silence means it is gone.
LOST_AFTER = 30.0


def silent_for(now: datetime, heartbeat_at: datetime) -> float:
    """Seconds since a worker's last heartbeat, by the clock that stamped it."""
    return (now - heartbeat_at).total_seconds()


def is_lost(silence: float) -> bool:
    """True when a worker stopped heartbeating (its jobs are rescued by their leases)."""
    return silence > LOST_AFTER


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """A registered worker as faces show it: who it is, and whether it still heartbeats."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    #: Seconds since the last heartbeat, by the database clock.
    silent_for: float
    #: Silent for longer than `LOST_AFTER`.
    lost: bool


@dataclass(frozen=True, slots=True)
class ScheduleStatus:
    """A stored schedule as faces show it: its progress and its next run."""

    name: str
    cron: str
    tz: str
    task: str
    misfire: str
    paused: bool
    #: The newest tick handled, and when a scheduler last looked.
    last_tick: datetime
    checked_at: datetime
    last_job_id: int | None
    last_state: JobState | None
    #: The next tick by the cron expression (fired only while not paused); None when the
    #: schedule is stored but not declared by this app.
    next_run: datetime | None
