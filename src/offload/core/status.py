"""What every face shows about workers and schedules, and the rules behind it (no I/O).

The CLI, an HTTP API and a dashboard must agree on when a worker counts as lost and when a
schedule runs next, so the rules live here and `App` applies them with the database clock;
faces only format the records. Each status is its stored record with the computed fields
added, so faces read them field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from offload.core.flow import QueuePolicy, Rate, TaskLimits
from offload.core.records import QueueFigures, QueueState, ScheduleState, WorkerInfo

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

    def to_json(self) -> dict[str, Any]:
        """The JSON view the CLI and the HTTP API show."""
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "queues": self.queues,
            "concurrency": self.concurrency,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "lost": self.lost,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleStatus(ScheduleState):
    """A stored schedule as faces show it: its row, and its next run."""

    #: The next tick by the cron expression (fired only while not paused); None when the
    #: schedule is stored but not declared by this app.
    next_run: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The JSON view the CLI and the HTTP API show."""
        return {
            "name": self.name,
            "cron": self.cron,
            "tz": self.tz,
            "task": self.task,
            "misfire": self.misfire,
            "paused": self.paused,
            "next_run": None if self.next_run is None else self.next_run.isoformat(),
            "last_tick": self.last_tick.isoformat(),
            "last_job_id": self.last_job_id,
            "last_state": None if self.last_state is None else str(self.last_state),
        }


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """A queue as faces show it: its jobs per state, the live workers serving it, and its
    flow control (policy, pause, drain rate, oldest wait, limits, jobs held back)."""

    name: str
    #: Jobs per state name (states with none left out).
    counts: dict[str, int]
    #: Ids of the workers that serve this queue and are not lost.
    workers: list[str]
    #: The stored policy; None when the queue has none (no bound, default aging).
    policy: QueuePolicy | None = None
    #: No claims are made from it while paused; enqueues still land.
    paused: bool = False
    #: Jobs completed per second, summed over the live workers' measured rates.
    drain_rate: float = 0.0
    #: Seconds the oldest due, not yet started job has waited (database clock); None when
    #: no job is due.
    oldest_available: float | None = None
    #: Due jobs a full concurrency limit (the queue's, a task's or a key's) keeps waiting;
    #: rate limits are not counted.
    held: int = 0
    #: The stored limits of the tasks with jobs waiting or running in this queue.
    task_limits: dict[str, TaskLimits] = field(default_factory=dict)

    @property
    def served(self) -> bool:
        """Whether any live worker takes jobs from this queue."""
        return bool(self.workers)

    @property
    def stranded(self) -> int:
        """Available jobs that no live worker will take: a queue nobody serves."""
        return 0 if self.served else self.counts.get("available", 0)

    @property
    def shed(self) -> int:
        """Jobs moved to `shed` under load, waiting for the sweep."""
        return self.counts.get("shed", 0)

    @property
    def limits(self) -> list[str]:
        """The limits in force, one phrase each: the queue's, then each task's by name."""
        out = []
        if self.policy is not None:
            out += _limit_phrases("", self.policy.concurrency, self.policy.rate, "")
        for task in sorted(self.task_limits):
            limit = self.task_limits[task]
            per = " per key" if limit.keyed else ""
            out += _limit_phrases(f"{task}: ", limit.concurrency, limit.rate, per)
        return out

    def to_json(self) -> dict[str, Any]:
        """The JSON view the CLI and the HTTP API show (without the name, which keys it)."""
        return {
            "counts": self.counts,
            "workers": self.workers,
            "served": self.served,
            "paused": self.paused,
            "policy": None if self.policy is None else self.policy.to_json(),
            "drain_rate": self.drain_rate,
            "oldest_available": self.oldest_available,
            "held": self.held,
            "shed": self.shed,
            "limits": self.limits,
            "task_limits": {
                task: {
                    "concurrency": limit.concurrency,
                    "rate": None if limit.rate is None else str(limit.rate),
                    "keyed": limit.keyed,
                }
                for task, limit in self.task_limits.items()
            },
        }


def _limit_phrases(prefix: str, concurrency: int | None, rate: Rate | None, per: str) -> list[str]:
    """'[task: ]N at once[ per key]' and '[task: ]20/s[ per key]', for the limits set."""
    out = []
    if concurrency is not None:
        out.append(f"{prefix}{concurrency} at once{per}")
    if rate is not None:
        out.append(f"{prefix}{rate}{per}")
    return out


def queue_statuses(
    counts: dict[str, dict[str, int]],
    workers: list[WorkerStatus],
    stored: list[QueueState] | None = None,
    figures: list[QueueFigures] | None = None,
    task_limits: dict[str, TaskLimits] | None = None,
) -> list[QueueStatus]:
    """Each queue with jobs, a stored policy or a drain rate, by name, with the live workers
    serving it and its flow control figures."""
    serving: dict[str, list[str]] = {}
    for worker in workers:
        if not worker.lost:
            for queue in worker.queues:
                serving.setdefault(queue, []).append(worker.id)
    policies = {state.name: state for state in stored or []}
    measured = {figure.name: figure for figure in figures or []}
    limits = task_limits or {}
    out = []
    for name in sorted(counts.keys() | policies.keys() | measured.keys()):
        state, figure = policies.get(name), measured.get(name)
        out.append(
            QueueStatus(
                name,
                dict(counts.get(name, {})),
                sorted(serving.get(name, [])),
                policy=None if state is None else state.policy,
                paused=state is not None and state.paused,
                drain_rate=0.0 if figure is None else figure.drain_rate,
                oldest_available=None if figure is None else figure.oldest_available,
                held=0 if figure is None else figure.held,
                task_limits={
                    task: limits[task]
                    for task in ([] if figure is None else figure.limited_tasks)
                    if task in limits
                },
            )
        )
    return out


def row_fields(row: WorkerInfo | ScheduleState) -> dict[str, Any]:
    """The fields of a stored record, to build its status from."""
    return {f.name: getattr(row, f.name) for f in fields(row)}
