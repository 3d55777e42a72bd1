"""How much a worker claims at once: its free slots plus its prefetch, which by default grows
with what the executor holds (children that queue short jobs hold many)."""

from __future__ import annotations

from typing import Any

import pytest

import offload
from offload.backends.params import Claimed, ClaimParams
from offload.core.errors import ConfigurationError
from offload.core.options import EnqueueOptions
from offload.runtime import executor
from offload.runtime.executor import PIPELINE_DEPTH
from offload.runtime.pool import ExecutorPool
from offload.runtime.processes.executor import ProcessExecutor
from offload.runtime.worker import Worker


def first_claim_size(app: offload.App, jobs: int, **options: Any) -> int:
    """Run a burst worker over `jobs` no-op jobs; return the limit of its first claim."""
    noop = offload.Task[[], None](app, app.registry.get("noop"), EnqueueOptions())
    handles = noop.enqueue_many([()] * jobs)
    burst: Worker = app.worker(
        app_path="tests.apps.basic:app", burst=True, install_signals=False, **options
    )
    limits: list[int] = []
    take = burst.backend.claims.take

    def recording_take(params: ClaimParams) -> Claimed:
        limits.append(params.limit)
        return take(params)

    burst.backend.claims.take = recording_take  # type: ignore[method-assign]
    try:
        assert burst.run() == 0
    finally:
        burst.backend.claims.take = take  # type: ignore[method-assign]
    assert burst.processed == jobs
    assert all(h.status() == offload.JobState.SUCCEEDED for h in handles)
    return limits[0]


def test_children_start_with_four_jobs_per_slot(basic_app: offload.App) -> None:
    """Until jobs are known to be short, a child holds one job, so the prefetch is small."""
    assert first_claim_size(basic_app, 20, executor="process", concurrency=2) == 2 + 8


def test_children_of_short_jobs_prefetch_half_what_they_hold(
    basic_app: offload.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = basic_app.worker(app_path="tests.apps.basic:app", concurrency=2)
    processes = ProcessExecutor("tests.apps.basic:app", 2, lambda job: None)
    pool = ExecutorPool("process", {"process": processes}, lambda job: "process")
    try:
        assert (pool.capacity(), worker._prefetch(pool)) == (2, 8)  # runs not known short
        # Runs count as short below SHORT_RUN on average; raise it rather than time runs.
        monkeypatch.setattr(executor, "SHORT_RUN", 3600.0)
        holds = PIPELINE_DEPTH * 2
        assert (pool.capacity(), worker._prefetch(pool)) == (holds, holds // 2)
    finally:
        pool.close()


def test_threads_prefetch_four_jobs_per_slot(basic_app: offload.App) -> None:
    assert first_claim_size(basic_app, 30, executor="thread", concurrency=2) == 2 + 8


def test_an_explicit_prefetch_is_kept(basic_app: offload.App) -> None:
    size = first_claim_size(basic_app, 50, executor="thread", concurrency=2, prefetch=3)
    assert size == 2 + 3


def test_a_negative_prefetch_is_refused_before_anything_runs(basic_app: offload.App) -> None:
    basic_app.enqueue("noop")
    before = basic_app.queue_counts()
    assert before == {"default": {"available": 1}}
    with pytest.raises(ConfigurationError, match="prefetch must be >= 0, got -1"):
        basic_app.worker(app_path="tests.apps.basic:app", prefetch=-1)
    assert basic_app.queue_counts() == before
