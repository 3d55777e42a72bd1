"""Cancelling running jobs in each executor, job context and progress, async concurrency."""

from __future__ import annotations

import time

import pytest

import offload
from offload.core.options import EnqueueOptions
from offload.core.states import JobState
from tests.runtime.conftest import StartWorker
from tests.runtime.test_worker_processes import wait_until

LEASE = 3.0  # the worker heartbeats every LEASE / 3 = 1 s


@pytest.mark.parametrize(
    ("task", "args"),
    [("sleep", [60.0]), ("polite_sleep", [60.0]), ("async_sleep", [60.0])],
    ids=["process", "thread", "async"],
)
def test_cancel_stops_a_running_job_within_two_heartbeats(
    basic_app: offload.App, start_worker: StartWorker, task: str, args: list[object]
) -> None:
    handle = basic_app.enqueue(task, args)
    start_worker(lease=LEASE, concurrency=2)
    wait_until(lambda: handle.status() is JobState.RUNNING, 30, "the job to start")
    asked = time.monotonic()
    assert basic_app.cancel(handle.id).cancel_requested
    job = handle.wait(timeout=30)
    took = time.monotonic() - asked
    assert job.state is JobState.CANCELLED
    assert job.errors[-1]["type"].endswith("JobCancelled")
    assert took <= 2 * LEASE / 3, took
    assert basic_app.enqueue("add", [1, 2]).result(timeout=30) == 3


def test_job_context_and_progress_are_visible(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    handle = basic_app.enqueue("report_progress", queue="default")
    start_worker(lease=LEASE)
    wait_until(lambda: handle.job().progress is not None, 30, "progress to be stored")
    assert handle.job().progress == {"fraction": 0.5, "message": "halfway"}
    assert handle.result(timeout=30) == f"{handle.id}:1:default"


def test_a_task_setting_its_own_cancel_event_leaves_the_next_job_of_its_child_alone(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    """Each job of a child has a cancel event of its own: a task's setting it, while it runs
    or from a thread after it returned, never reaches the next job."""
    task = offload.Task[..., object](
        basic_app, basic_app.registry.get("cancel_itself"), EnqueueOptions()
    )
    handles = task.enqueue_many([offload.call(later) for later in (0.0, 0.0, 0.05, 0.05, 0.05)])
    start_worker(concurrency=1)
    assert [h.result(timeout=30) for h in handles] == [False] * 5


def test_hundreds_of_async_jobs_run_at_once(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    task = offload.Task[..., object](
        basic_app, basic_app.registry.get("async_sleep"), EnqueueOptions()
    )
    handles = task.enqueue_many([offload.call(1.0) for _ in range(300)])
    started = time.monotonic()
    start_worker(executor="async", concurrency=300)
    for handle in handles:
        assert handle.result(timeout=60) == 1.0
    jobs = [h.job() for h in handles]
    starts = sorted(j.started_at for j in jobs if j.started_at)
    span = (starts[-1] - starts[0]).total_seconds()
    assert span < 1.0, f"300 one-second jobs did not overlap (starts spread over {span:.1f}s)"
    print(f"300 async jobs of 1 s each done {time.monotonic() - started:.1f}s after start")


def test_current_job_outside_a_job_raises() -> None:
    with pytest.raises(offload.OffloadError, match="outside a running job"):
        offload.current_job()


def test_async_producers_enqueue_and_await_results(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    import asyncio

    add = offload.Task[..., object](basic_app, basic_app.registry.get("add"), EnqueueOptions())
    start_worker()

    async def produce() -> list[object]:
        handles = await asyncio.gather(*(add.enqueue_async(i, 1) for i in range(20)))
        return list(await asyncio.gather(*(h.result_async(timeout=30) for h in handles)))

    assert asyncio.run(produce()) == [i + 1 for i in range(20)]


def test_children_are_recycled_past_their_memory_cap(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    leak = offload.Task[..., object](basic_app, basic_app.registry.get("leak"), EnqueueOptions())
    handles = leak.enqueue_many([offload.call(30) for _ in range(6)])
    start_worker(concurrency=1, max_child_memory=60)
    pids = [h.result(timeout=60) for h in handles]
    assert len(set(pids)) >= 2, f"one child ran every job: {pids}"
    assert all(h.job().attempt == 1 for h in handles), "recycling costs no attempt"


def test_children_are_recycled_after_their_quota_of_jobs(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    leak = offload.Task[..., object](basic_app, basic_app.registry.get("leak"), EnqueueOptions())
    handles = leak.enqueue_many([offload.call(0) for _ in range(6)])
    start_worker(concurrency=1, max_jobs=2)
    pids = [h.result(timeout=60) for h in handles]
    assert [pids.count(pid) for pid in dict.fromkeys(pids)] == [2, 2, 2], pids
