"""The HTTP API's `/metrics`: cluster-wide gauges read from the database at scrape time, and
the counters of the enqueues this process served.

`CensusCollector` asks the App for its census once per scrape (two statements, whatever the
number of queues) and turns it into the queue depth, oldest age and worker gauges; only
the API exports them, so several worker hosts never repeat one cluster-wide series. Each
App gets a registry of its own, so two APIs in one process keep their counts apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from offload.app import App
from offload.core.errors import BackPressure, QueueFull
from offload.core.metrics import METRICS, SeriesCap

#: The content type of Prometheus' text format that `render` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _family(name: str) -> GaugeMetricFamily:
    spec = METRICS[name]
    return GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))


class CensusCollector(Collector):
    """Queue depth by state, oldest due age by queue and workers alive or lost: computed
    from one `App.census` per scrape."""

    def __init__(self, app: App) -> None:
        self.app = app

    def describe(self) -> Iterable[Metric]:
        """The families without samples: registering asks no database."""
        return [_family(name) for name in _GAUGES]

    def collect(self) -> Iterator[Metric]:
        census = self.app.census()
        jobs, oldest, workers, slots = (_family(name) for name in _GAUGES)
        ages: dict[str, float] = {}
        for row in census.states:
            jobs.add_metric([row.queue, row.state.value], row.jobs)
            ages[row.queue] = max(ages.get(row.queue, 0.0), row.oldest_due or 0.0)
        for queue, age in sorted(ages.items()):
            oldest.add_metric([queue], age)
        workers.add_metric(["alive"], census.workers.alive)
        workers.add_metric(["lost"], census.workers.lost)
        slots.add_metric([], census.workers.alive_slots)
        yield from (jobs, oldest, workers, slots)


#: The gauges `CensusCollector` exports, in the order `collect` builds them.
_GAUGES = (
    "offload_queue_jobs",
    "offload_queue_oldest_age_seconds",
    "offload_workers",
    "offload_worker_slots",
)


class ApiMetrics:
    """The registry `/metrics` renders: the census gauges and this process's enqueue
    counters (labels capped by `SeriesCap`, one per counter). Counted from the event
    loop's thread only; `render` runs in a worker thread and only reads."""

    def __init__(self, app: App, series_limit: int | None = None) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(CensusCollector(app))
        enqueued, rejected = (
            METRICS[name] for name in ("offload_jobs_enqueued_total", "offload_jobs_rejected_total")
        )
        self._enqueued = Counter(
            enqueued.name, enqueued.help, enqueued.labels, registry=self.registry
        )
        self._rejected = Counter(
            rejected.name, rejected.help, rejected.labels, registry=self.registry
        )
        limit = {} if series_limit is None else {"limit": series_limit}
        self._pairs, self._queues = SeriesCap(**limit), SeriesCap(**limit)

    def enqueued(self, queue: str, task: str, count: int = 1) -> None:
        """Count `count` jobs of `task` stored in `queue` by this process."""
        if count:
            self._enqueued.labels(*self._pairs((queue, task))).inc(count)

    def rejected(self, error: BackPressure) -> None:
        """Count an enqueue that back pressure turned away."""
        reason = "full" if isinstance(error, QueueFull) else "overloaded"
        queue, _ = self._queues((error.queue, ""))
        self._rejected.labels(queue, reason).inc()

    def render(self) -> bytes:
        """Every metric in Prometheus' text format (reads the database: call off the loop)."""
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "ApiMetrics", "CensusCollector"]
