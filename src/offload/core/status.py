"""What every face shows about workers and schedules, and the rules behind it (no I/O).

The CLI, an HTTP API and a dashboard must agree on when a worker counts as lost and when a
schedule runs next, so the rules live here and `App` applies them with the database clock;
faces only format the records. Each status is its stored record with the computed fields
added, so faces read them field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from offload.core.records import ScheduleState, WorkerInfo

#: A worker heartbeats at least every 10 s; this much silence means it is gone.
LOST_AFTER = 30.0


def silent_for(now: datetime, heartbeat_at: datetime) -> float:
    """Seconds since a worker's last heartbeat, by the clock that stamped it."""
    return (now - heartbeat_at).total_seconds()


def is_lost(silence: float) -> bool:
    """True when a worker stopped heartbeating (its jobs are rescued by their leases)."""
    return silence > LOST_AFTER


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStatus(WorkerInfo):
    """A registered worker as faces show it: its row, and whether it still heartbeats."""

    #: Seconds since the last heartbeat, by the database clock.
    silent_for: float
    #: Silent for longer than `LOST_AFTER`.
    lost: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleStatus(ScheduleState):
    """A stored schedule as faces show it: its row, and its next run."""

    #: The next tick by the cron expression (fired only while not paused); None when the
    #: schedule is stored but not declared by this app.
    next_run: datetime | None


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """A queue as faces show it: its jobs per state, and the live workers serving it."""

    name: str
    #: Jobs per state name (states with none left out).
    counts: dict[str, int]
    #: Ids of the workers that serve this queue and are not lost.
    workers: list[str]

    @property
    def served(self) -> bool:
        """Whether any live worker takes jobs from this queue."""
        return bool(self.workers)

    @property
    def stranded(self) -> int:
        """Available jobs that no live worker will take: a queue nobody serves."""
        return 0 if self.served else self.counts.get("available", 0)


def queue_statuses(
    counts: dict[str, dict[str, int]], workers: list[WorkerStatus]
) -> list[QueueStatus]:
    """Each queue with jobs, by name, with the live workers serving it."""
    serving: dict[str, list[str]] = {}
    for worker in workers:
        if not worker.lost:
            for queue in worker.queues:
                serving.setdefault(queue, []).append(worker.id)
    return [
        QueueStatus(name, dict(counts[name]), sorted(serving.get(name, [])))
        for name in sorted(counts)
    ]


def row_fields(row: WorkerInfo | ScheduleState) -> dict[str, Any]:
    """The fields of a stored record, to build its status from."""
    return {f.name: getattr(row, f.name) for f in fields(row)}
