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

from collections.abc import Sequence
from dataclasses import dataclass, field
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from offload.backends.params import Outcome
from offload.core.errors import ConfigurationError
from offload.core.job import Job
from offload.core.metrics import DURATION_BUCKETS, METRICS, WAIT_BUCKETS, SeriesCap
from offload.core.states import JobState
from offload.runtime.executor import Finished


def _counter(name: str, registry: CollectorRegistry) -> Counter:
    spec = METRICS[name]
    return Counter(spec.name, spec.help, spec.labels, registry=registry)


def _histogram(name: str, buckets: Sequence[float], registry: CollectorRegistry) -> Histogram:
    spec = METRICS[name]
    return Histogram(spec.name, spec.help, spec.labels, registry=registry, buckets=buckets)


@dataclass(slots=True)
class _Series:
    """The labelled series of one (queue, task) pair, looked up once."""

    started: Counter
    duration: Histogram
    wait: Histogram
    finished: dict[JobState, Counter] = field(default_factory=dict)


class WorkerMetrics:
    """The counters and histograms of one worker (see the module docstring), in a registry
    of their own so that several workers in one process (tests) do not collide."""

    def __init__(self, series_limit: int | None = None) -> None:
        self.registry = CollectorRegistry()
        self._started = _counter("offload_jobs_started_total", self.registry)
        self._finished = _counter("offload_jobs_finished_total", self.registry)
        self._duration = _histogram("offload_job_duration_seconds", DURATION_BUCKETS, self.registry)
        self._wait = _histogram("offload_job_wait_seconds", WAIT_BUCKETS, self.registry)
        self._cap = SeriesCap() if series_limit is None else SeriesCap(series_limit)
        self._series: dict[tuple[str, str], _Series] = {}

    def _of(self, job: Job) -> _Series:
        """The series of `job`'s queue and task (those of `OTHER` past the cap)."""
        pair = (job.queue, job.task)
        found = self._series.get(pair)
        if found is None:
            labels = self._cap(pair)
            found = self._series.get(labels)
            if found is None:
                found = _Series(
                    self._started.labels(*labels),
                    self._duration.labels(*labels),
                    self._wait.labels(*labels),
                )
                self._series[labels] = found
            self._series[pair] = found
        return found

    def started(self, jobs: Sequence[Job]) -> None:
        """Count jobs started, and each one's wait from due to claimed (both times are the
        database's, so hosts' clocks do not skew it)."""
        for job in jobs:
            series = self._of(job)
            series.started.inc()
            if job.started_at is not None:
                series.wait.observe(max((job.started_at - job.run_at).total_seconds(), 0.0))

    def ended(self, runs: Sequence[Finished], outcomes: Sequence[Outcome]) -> None:
        """Count runs ended by outcome, and each measured run's duration."""
        for run, outcome in zip(runs, outcomes, strict=True):
            series = self._of(run.job)
            counter = series.finished.get(outcome.state)
            if counter is None:
                job = run.job
                queue, task = self._cap((job.queue, job.task))
                counter = self._finished.labels(queue, task, outcome.state.value)
                series.finished[outcome.state] = counter
            counter.inc()
            if run.duration is not None:
                series.duration.observe(run.duration)


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
