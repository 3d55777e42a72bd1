"""The Prometheus metrics offload exports: each one's name, type, labels and help (no I/O).

The worker (`offload.runtime.metrics`, behind `offload worker --metrics-port`) and the HTTP
API (`offload.server.metrics`, at `/metrics`) build their metrics from `METRICS`, and the
docs' alert rules are checked against it, so a name lives in one place. Names follow
Prometheus' advice: prefix `offload_`, base units (seconds), `_total` on counters.

Labels are bounded: a queue, a task, a state or an outcome, never a job id, an argument or
a message. A process keeps at most `SERIES_LIMIT` (queue, task) pairs per metric family; any
later pair is counted under `OTHER`, so a stream of new names cannot grow its memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: The label value that stands for every (queue, task) pair beyond `SERIES_LIMIT`.
OTHER = "_other"
#: Distinct (queue, task) pairs a process labels its series with, at most.
SERIES_LIMIT = 500

#: Histogram buckets of a run's duration, 5 ms to an hour (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
#: Histogram buckets of a job's wait from due to claimed, 1 ms to an hour (seconds).
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported metric: its full name (with `_total` for a counter), type, labels, help,
    and the process that exports it (`worker` or `api`)."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str
    source: Literal["worker", "api"]

    def series(self) -> tuple[str, ...]:
        """The sample names it exposes: a histogram's `_bucket`, `_sum` and `_count`."""
        if self.kind == "histogram":
            return tuple(f"{self.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        return (self.name,)


#: Every metric offload exports, by name.
METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "offload_jobs_enqueued_total",
            "counter",
            ("queue", "task"),
            "Jobs stored by enqueues through this HTTP API process.",
            "api",
        ),
        MetricSpec(
            "offload_jobs_rejected_total",
            "counter",
            ("queue", "reason"),
            "Enqueues through this HTTP API process that back pressure turned away "
            "(reason full: max_depth; overloaded: admission control).",
            "api",
        ),
        MetricSpec(
            "offload_queue_jobs",
            "gauge",
            ("queue", "state"),
            "Jobs in the database per queue and state, read at scrape time.",
            "api",
        ),
        MetricSpec(
            "offload_queue_oldest_age_seconds",
            "gauge",
            ("queue",),
            "Seconds the oldest due, not yet started job of the queue has waited "
            "(0 when none waits), by the database clock, read at scrape time.",
            "api",
        ),
        MetricSpec(
            "offload_workers",
            "gauge",
            ("state",),
            "Registered workers that heartbeat (alive) or went silent (lost), at scrape time.",
            "api",
        ),
        MetricSpec(
            "offload_worker_slots",
            "gauge",
            (),
            "Job slots (concurrency) summed over the live workers, at scrape time.",
            "api",
        ),
        MetricSpec(
            "offload_jobs_started_total",
            "counter",
            ("queue", "task"),
            "Jobs this worker handed to an executor to run.",
            "worker",
        ),
        MetricSpec(
            "offload_jobs_finished_total",
            "counter",
            ("queue", "task", "outcome"),
            "Runs this worker saw end, by the state it recorded "
            "(succeeded, retrying, dead, cancelled).",
            "worker",
        ),
        MetricSpec(
            "offload_job_duration_seconds",
            "histogram",
            ("queue", "task"),
            "Seconds a run took, measured where it ran.",
            "worker",
        ),
        MetricSpec(
            "offload_job_wait_seconds",
            "histogram",
            ("queue", "task"),
            "Seconds from a job becoming due (enqueued, or its run_at or retry time "
            "reached) to its claim, by the database clock.",
            "worker",
        ),
    )
}


class SeriesCap:
    """Admits at most `limit` distinct label pairs; any later pair maps to (OTHER, OTHER).

    Called once per new pair only: callers keep the pairs it answered for, so the check is
    off the hot path."""

    def __init__(self, limit: int = SERIES_LIMIT) -> None:
        self.limit = limit
        self._seen: set[tuple[str, str]] = set()

    def __call__(self, pair: tuple[str, str]) -> tuple[str, str]:
        if pair in self._seen:
            return pair
        if len(self._seen) >= self.limit:
            return (OTHER, OTHER)
        self._seen.add(pair)
        return pair


__all__ = [
    "DURATION_BUCKETS",
    "METRICS",
    "OTHER",
    "SERIES_LIMIT",
    "WAIT_BUCKETS",
    "MetricSpec",
    "SeriesCap",
]
