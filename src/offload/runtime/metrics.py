"""A worker's Prometheus counters and histograms, served on a port of its own
(`offload worker --metrics-port`). Needs the `metrics` extra (prometheus-client), not the
HTTP API's Starlette.

`WorkerMetrics` is the worker's `JobObserver`: it counts in the supervisor process, the
one that records outcomes, so the jobs of every child executor are counted there and no
multiprocess mode (with its shared files and restrictions) is needed. Each (queue, task)
pair's series are looked up once and kept, so a job costs a few increments and two bucket
searches. Queue-wide gauges (depth, oldest age, workers) are the HTTP API's: each worker
exporting them would repeat one cluster-wide figure per host.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from offload.backends.params import Outcome
from offload.core.errors import ConfigurationError
from offload.core.job import Job
from offload.core.metrics import DURATION_BUCKETS, METRICS, WAIT_BUCKETS, SeriesCap
from offload.core.states import JobState
from offload.runtime.executor import Finished


class _Histogram:
    """Observations counted per bucket (the last one +Inf), not cumulated: one bisect and
    two additions each."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bound >= value: `le`
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        """Prometheus' cumulative buckets, +Inf last (its count is the histogram's)."""
        out: list[tuple[str, float]] = []
        seen = 0
        for bound, count in zip([*self.bounds, float("inf")], list(self.counts), strict=True):
            seen += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), seen))
        return out


class _Series:
    """What one worker counted of one (queue, task) pair."""

    __slots__ = ("duration", "finished", "started", "wait")

    def __init__(self) -> None:
        self.started = 0
        #: Runs ended, by the state recorded (succeeded, retrying, dead, cancelled).
        self.finished: dict[JobState, int] = {}
        self.duration = _Histogram(DURATION_BUCKETS)
        self.wait = _Histogram(WAIT_BUCKETS)


class WorkerMetrics(Collector):
    """The counters and histograms of one worker (see the module docstring).

    They are plain numbers that the worker loop's thread adds to, without a lock per job
    (prometheus-client's own metrics take one per increment, which cost a drain several
    percent); a scrape, from the HTTP server's thread, reads them through `collect`. A
    lock guards only the creation of a series, so a scrape never iterates a growing dict.
    """

    def __init__(self, series_limit: int | None = None) -> None:
        self._cap = SeriesCap() if series_limit is None else SeriesCap(series_limit)
        #: Series by queue, then task; a pair past the cap shares OTHER's series.
        self._series: dict[str, dict[str, _Series]] = {}
        #: Each series once, with its labels.
        self._labelled: list[tuple[str, str, _Series]] = []
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def _of(self, job: Job) -> _Series:
        """The series of `job`'s queue and task, made on first sight (OTHER's past the cap)."""
        with self._lock:
            queue, task = self._cap((job.queue, job.task))
            found = self._series.get(queue, {}).get(task)
            if found is None:
                found = _Series()
                self._series.setdefault(queue, {})[task] = found
                self._labelled.append((queue, task, found))
            self._series.setdefault(job.queue, {})[job.task] = found
        return found

    def started(self, jobs: Sequence[Job]) -> None:
        """Count jobs started, and each one's wait from due to claimed (both times are the
        database's, so hosts' clocks do not skew it)."""
        known = self._series
        for job in jobs:
            tasks = known.get(job.queue)
            series = None if tasks is None else tasks.get(job.task)
            if series is None:
                series = self._of(job)
            series.started += 1
            if job.started_at is not None:
                wait = (job.started_at - job.run_at).total_seconds()
                series.wait.observe(wait if wait > 0.0 else 0.0)

    def ended(self, runs: Sequence[Finished], outcomes: Sequence[Outcome]) -> None:
        """Count runs ended by outcome, and each measured run's duration."""
        known = self._series
        for run, outcome in zip(runs, outcomes, strict=True):
            job = run.job
            tasks = known.get(job.queue)
            series = None if tasks is None else tasks.get(job.task)
            if series is None:
                series = self._of(job)
            finished = series.finished
            state = outcome.state
            if state in finished:
                finished[state] += 1
            else:
                with self._lock:  # a new key: never while a scrape copies the dict
                    finished[state] = 1
            if run.duration is not None:
                series.duration.observe(run.duration)

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        started, finished, duration, wait = families
        with self._lock:
            labelled = list(self._labelled)
        for queue, task, series in labelled:
            started.add_metric([queue, task], series.started)
            with self._lock:
                ends = dict(series.finished)
            for outcome, count in sorted(ends.items()):
                finished.add_metric([queue, task, outcome.value], count)
            duration.add_metric([queue, task], series.duration.buckets(), series.duration.total)
            wait.add_metric([queue, task], series.wait.buckets(), series.wait.total)
        yield from families

    @staticmethod
    def _families() -> tuple[
        CounterMetricFamily, CounterMetricFamily, HistogramMetricFamily, HistogramMetricFamily
    ]:
        """The four families, without samples, in `_FAMILIES`' order."""
        started, finished, duration, wait = (METRICS[name] for name in _FAMILIES)
        return (
            CounterMetricFamily(started.name, started.help, labels=started.labels),
            CounterMetricFamily(finished.name, finished.help, labels=finished.labels),
            HistogramMetricFamily(duration.name, duration.help, labels=duration.labels),
            HistogramMetricFamily(wait.name, wait.help, labels=wait.labels),
        )


#: The families `WorkerMetrics` exports, in the order `collect` fills them.
_FAMILIES = (
    "offload_jobs_started_total",
    "offload_jobs_finished_total",
    "offload_job_duration_seconds",
    "offload_job_wait_seconds",
)


class MetricsServer:
    """The registry served over HTTP in Prometheus' text format, from a daemon thread."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        try:
            started: tuple[WSGIServer, Thread] = start_http_server(port, host, registry)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
            ) from None
        self._server, self._thread = started
        #: The port it listens on.
        self.port = int(self._server.server_port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


__all__ = ["MetricsServer", "WorkerMetrics"]
