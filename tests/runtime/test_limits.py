"""Per-job limits and poison jobs, in real worker processes (RELIABILITY tests 7 and 8)."""

from __future__ import annotations

import offload
from offload.core.options import EnqueueOptions
from offload.core.states import JobState
from tests.runtime.conftest import StartWorker


def test_each_limit_stops_its_job_with_a_named_error_and_the_worker_carries_on(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    nap = basic_app.enqueue("nap", [30])
    blocked = basic_app.enqueue("blocking_c_call")
    spin = basic_app.enqueue("spin", [30])
    hog = basic_app.enqueue("hog", [400])
    start_worker(concurrency=4)
    expected = {
        nap: ("JobTimeout", "timeout=1s"),
        blocked: ("JobTimeout", "timeout=1s"),
        spin: ("CpuLimitExceeded", "cpu_seconds=1"),
        hog: ("MemoryLimitExceeded", "memory_mb=100"),
    }
    for handle, (kind, detail) in expected.items():
        job = handle.wait(timeout=30)
        assert job.state is JobState.DEAD, (job.task, job.state)
        assert job.errors[-1]["type"] == kind, job.errors
        assert detail in job.errors[-1]["message"], job.errors
    # From the first start, by the database's clock: the worker's own start is not timed.
    spans = [(job.started_at, job.finished_at) for job in (h.job() for h in expected)]
    first = min(start for start, _ in spans if start is not None)
    last = max(end for _, end in spans if end is not None)
    assert (last - first).total_seconds() < 15, "limits stop jobs promptly"
    nap_job = nap.job()
    assert nap_job.started_at and nap_job.finished_at
    assert (nap_job.finished_at - nap_job.started_at).total_seconds() < 3, "killed within 3 s"
    assert basic_app.enqueue("add", [2, 2]).result(timeout=30) == 4


def test_poison_jobs_die_after_max_attempts_and_normal_jobs_all_complete(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    poison = [basic_app.enqueue(name) for name in ("exit_now", "kill_self", "segfault")]
    poison.append(basic_app.enqueue("hog", [400]))
    sleep = offload.Task[..., object](basic_app, basic_app.registry.get("add"), EnqueueOptions())
    normal = sleep.enqueue_many([offload.call(i, i) for i in range(1000)])
    start_worker(concurrency=4)
    for handle in poison:
        job = handle.wait(timeout=60)
        assert job.state is JobState.DEAD, job.task
        assert job.attempt == job.max_attempts == 2, (job.task, job.attempt)
        kinds = {e["type"] for e in job.errors}
        assert kinds in ({"WorkerLost"}, {"MemoryLimitExceeded"}), (job.task, kinds)
    results = [h.result(timeout=60) for h in normal]
    assert results == [2 * i for i in range(1000)]
