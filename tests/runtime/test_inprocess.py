"""Timeouts of jobs run inside the worker process (thread and asyncio executors), on both
backends: the executor's own limit is a JobTimeout, a task's own TimeoutError is its error."""

from __future__ import annotations

import asyncio

import offload
from offload.core.states import JobState


def run_burst(app: offload.App) -> None:
    """Run a thread worker (async tasks go to its asyncio executor) until nothing is due."""
    worker = app.worker(executor="thread", burst=True, install_signals=False, concurrency=2)
    assert worker.run() == 0


def test_an_async_task_s_own_timeout_is_reported_as_its_error_with_traceback(
    app: offload.App,
) -> None:
    @app.task(name="own_wait_for", max_attempts=1)
    async def own_wait_for() -> None:
        await asyncio.wait_for(asyncio.sleep(30), 0.01)

    @app.task(name="own_wait_for_under_limit", max_attempts=1, timeout=60)
    async def own_wait_for_under_limit() -> None:
        await asyncio.wait_for(asyncio.sleep(30), 0.01)

    handles = [own_wait_for.enqueue(), own_wait_for_under_limit.enqueue()]
    run_burst(app)
    for handle, name in zip(handles, ("own_wait_for", "own_wait_for_under_limit"), strict=True):
        job = handle.job()
        assert job.state is JobState.DEAD, job
        (error,) = job.errors
        assert error["type"] == "TimeoutError", error
        assert error["traceback"], error
        assert f"in {name}" in error["traceback"], error["traceback"]
        assert "wait_for" in error["traceback"], error["traceback"]


def test_an_async_task_over_its_timeout_fails_with_job_timeout(app: offload.App) -> None:
    @app.task(name="slow_async", max_attempts=1, timeout=0.2)
    async def slow_async() -> None:
        await asyncio.sleep(30)

    handle = slow_async.enqueue()
    run_burst(app)
    job = handle.job()
    assert job.state is JobState.DEAD, job
    (error,) = job.errors
    assert error["type"] == "JobTimeout", error
    assert error["message"] == "exceeded timeout=0.2s", error
