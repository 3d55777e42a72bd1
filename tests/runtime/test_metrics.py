"""A worker's metrics (`WorkerMetrics` as its observer), on both backends with the thread
executor in this process: started and finished counts by queue, task and outcome, the run
time and wait histograms, a batch call counted per job, and bounded series."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import offload
from offload.core.job import Job
from offload.core.metrics import OTHER
from offload.runtime.executor import Finished
from offload.runtime.metrics import WorkerMetrics
from offload.runtime.outcomes import CANCELLED_BEFORE_START, outcome_of
from offload.task import Call

#: Retries with no backoff: due at once, so a burst worker runs them before it exits.
FAST_RETRY = offload.RetryPolicy(max_attempts=2, base=0.0, max_delay=0.0, jitter=0.0)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value; 0 when the series does not exist."""
    return registry.get_sample_value(name, labels) or 0.0


def drain(app: offload.App, metrics: WorkerMetrics, **options: Any) -> None:
    worker = app.worker(
        executor="thread", burst=True, install_signals=False, observer=metrics, **options
    )
    assert worker.run() == 0


def test_counts_match_the_jobs_a_worker_ran(app: offload.App) -> None:
    @app.task(name="ok")
    def ok(n: int) -> int:
        return n

    @app.task(name="boom", retry=FAST_RETRY)
    def boom() -> None:
        raise ValueError("boom")

    @app.task(name="mailer", queue="mail")
    def mailer(to: str) -> None:
        return None

    for n in range(5):
        ok.enqueue(n)
    boom.enqueue()
    mailer.enqueue("a@example.org")
    mailer.enqueue("b@example.org")
    metrics = WorkerMetrics()

    drain(app, metrics, queues=["default", "mail"], concurrency=2)

    r = metrics.registry
    assert sample(r, "offload_jobs_started_total", queue="default", task="ok") == 5
    assert sample(r, "offload_jobs_started_total", queue="default", task="boom") == 2
    assert sample(r, "offload_jobs_started_total", queue="mail", task="mailer") == 2
    finished = "offload_jobs_finished_total"
    assert sample(r, finished, queue="default", task="ok", outcome="succeeded") == 5
    assert sample(r, finished, queue="default", task="boom", outcome="retrying") == 1
    assert sample(r, finished, queue="default", task="boom", outcome="dead") == 1
    assert sample(r, finished, queue="mail", task="mailer", outcome="succeeded") == 2
    for task, runs in (("ok", 5), ("boom", 2)):
        labels = {"queue": "default", "task": task}
        assert sample(r, "offload_job_duration_seconds_count", **labels) == runs
        assert sample(r, "offload_job_wait_seconds_count", **labels) == runs
        assert sample(r, "offload_job_wait_seconds_sum", **labels) >= 0
        inf = sample(r, "offload_job_duration_seconds_bucket", le="+Inf", **labels)
        assert inf == runs
    assert sample(r, "offload_job_duration_seconds_sum", queue="default", task="ok") < 5


def test_a_batch_call_counts_each_of_its_jobs(app: offload.App) -> None:
    @app.batch_task(name="bulk", max_size=10, max_wait=0.0)
    def bulk(items: list[offload.BatchItem]) -> list[Any]:
        return [item.args[0] for item in items]

    bulk.enqueue_many([Call((n,)) for n in range(6)])
    metrics = WorkerMetrics()

    drain(app, metrics, concurrency=1)

    r = metrics.registry
    assert sample(r, "offload_jobs_started_total", queue="default", task="bulk") == 6
    assert (
        sample(r, "offload_jobs_finished_total", queue="default", task="bulk", outcome="succeeded")
        == 6
    )
    assert sample(r, "offload_job_wait_seconds_count", queue="default", task="bulk") == 6


def test_a_job_cancelled_before_it_started_counts_as_finished_only(app: offload.App) -> None:
    """The worker's own end for a buffered job whose cancel arrived: no start, one end."""

    @app.task(name="ok")
    def ok() -> None:
        return None

    job = app.backend.jobs.get(ok.enqueue().id)
    metrics = WorkerMetrics()
    ended = Finished(job, ok=False, error=CANCELLED_BEFORE_START, cancelled=True)
    metrics.ended([ended], [outcome_of(ended, FAST_RETRY)])
    r = metrics.registry
    labels = {"queue": "default", "task": "ok"}
    assert sample(r, "offload_jobs_finished_total", outcome="cancelled", **labels) == 1
    assert sample(r, "offload_jobs_started_total", **labels) == 0
    assert sample(r, "offload_job_duration_seconds_count", **labels) == 0


@pytest.mark.parametrize(("limit", "others"), [(1, 8), (3, 5)])
def test_series_stay_bounded_whatever_the_task_names(
    app: offload.App, limit: int, others: int
) -> None:
    """Past `limit` (queue, task) pairs, further ones are counted under OTHER: no series
    per job, whatever names the jobs carry; labels never hold a job id or arguments."""
    ok = app.task(name="ok")(lambda: None)
    template = app.backend.jobs.get(ok.enqueue().id)
    jobs = [_renamed(template, f"task{n}", job_id=template.id + n) for n in range(8)]
    metrics = WorkerMetrics(series_limit=limit)
    metrics.started(jobs)
    metrics.started(jobs[:2])
    r = metrics.registry
    started = [
        s
        for family in r.collect()
        for s in family.samples
        if s.name == "offload_jobs_started_total"
    ]
    assert len(started) == limit + 1
    assert sum(s.value for s in started) == 10
    assert sample(r, "offload_jobs_started_total", queue=OTHER, task=OTHER) == others
    assert sample(r, "offload_jobs_started_total", queue="default", task="task0") == 2
    for s in started:
        assert set(s.labels) == {"queue", "task"}
        assert str(template.id) not in s.labels.values()


def _renamed(job: Job, task: str, job_id: int) -> Job:
    return replace(job, task=task, id=job_id)
