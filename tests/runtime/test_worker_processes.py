"""The worker as real processes: crashes, kills, retries, bad tasks, graceful stop."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import offload
from offload.core.options import EnqueueOptions
from offload.core.states import JobState
from tests.runtime.conftest import PYTHONPATH, StartWorker


def wait_until(condition: object, timeout: float, what: str) -> None:
    """Poll `condition()` until true; fail naming `what` after `timeout` seconds."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def counts(app: offload.App) -> dict[str, int]:
    """Jobs per state over all queues."""
    total: dict[str, int] = {}
    for per_state in app.queue_counts().values():
        for state, number in per_state.items():
            total[state] = total.get(state, 0) + number
    return total


def test_worker_runs_jobs_and_records_results(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    handles = [basic_app.enqueue("add", [i, 1]) for i in range(20)]
    start_worker(concurrency=2)
    assert [h.result(timeout=30) for h in handles] == [i + 1 for i in range(20)]
    job = handles[0].job()
    assert job.state is JobState.SUCCEEDED
    assert job.attempt == 1
    assert job.started_at is not None and job.finished_at is not None
    assert job.worker is not None and ":" in job.worker


def test_failing_job_retries_with_backoff_then_dies(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    handle = basic_app.enqueue("fail", ["always"])
    start_worker()
    job = handle.wait(timeout=30)
    assert job.state is JobState.DEAD
    assert job.attempt == 3
    assert [e["type"] for e in job.errors] == ["ValueError"] * 3
    assert all(e["message"] == "always" for e in job.errors)
    assert "Traceback" in job.errors[0]["traceback"]


def test_unknown_task_goes_dead_and_worker_keeps_running(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    @basic_app.task(name="only_on_the_producer")
    def only_on_the_producer() -> None:
        return None

    ghost = only_on_the_producer.enqueue()
    worker = start_worker()
    job = ghost.wait(timeout=30)
    assert job.state is JobState.DEAD
    assert job.attempt == 1, "an unknown task is not retried"
    assert job.errors[-1]["type"].endswith("UnknownTask")
    assert "only_on_the_producer" in job.errors[-1]["message"]
    assert basic_app.enqueue("add", [2, 3]).result(timeout=30) == 5
    assert worker.poll() is None


def test_non_json_result_fails_naming_the_type(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    handle = basic_app.enqueue("bad_result", max_attempts=1)
    start_worker()
    job = handle.wait(timeout=30)
    assert job.state is JobState.DEAD
    assert job.errors[-1]["type"].endswith("SerializationError")
    assert "set" in job.errors[-1]["message"]


def test_delayed_job_runs_on_time_not_before(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    start_worker()
    # The delay is timed from the enqueue: the worker's own start must not be part of it.
    wait_until(lambda: bool(basic_app.worker_statuses()), 60, "the worker to register")
    handle = basic_app.enqueue("add", [1, 1], delay=1.5)
    assert handle.status() is JobState.SCHEDULED
    job = handle.wait(timeout=30)
    assert job.started_at is not None
    waited = (job.started_at - job.enqueued_at).total_seconds()
    assert 1.5 <= waited < 4.0, waited


def test_killed_worker_job_runs_again_on_another_worker(
    basic_app: offload.App, start_worker: StartWorker, tmp_path: Path
) -> None:
    handle = basic_app.enqueue("sleep", [3.0, "victim"])
    first = start_worker(lease=2, rescue=0.5)
    wait_until(lambda: handle.status() is JobState.RUNNING, 30, "the job to start")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    start_worker(lease=2, rescue=0.5)
    job = handle.wait(timeout=60)
    assert job.state is JobState.SUCCEEDED
    assert job.attempt == 2
    assert job.errors[0]["type"] == "WorkerLost"


def test_worker_kill_chaos_loses_nothing(
    basic_app: offload.App, start_worker: StartWorker, tmp_path: Path
) -> None:
    """RELIABILITY test 3 at CI size: 2,000 jobs, 4 workers x 4, 20 SIGKILLs, 0 lost."""
    total, kills_wanted, concurrency = 2000, 20, 4
    sleep = offload.Task[..., object](basic_app, basic_app.registry.get("sleep"), EnqueueOptions())
    handles = sleep.enqueue_many([offload.call(0.1, f"j{i}") for i in range(total)])
    settings = {"lease": 2, "rescue": 0.5, "concurrency": concurrency}
    workers = [start_worker(**settings) for _ in range(4)]
    rng = random.Random(3)
    kills = 0
    while kills < kills_wanted:
        time.sleep(rng.uniform(0.2, 1.0))
        victim = rng.randrange(len(workers))
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(10)
        workers[victim] = start_worker(**settings)
        kills += 1
    last_kill = time.monotonic()
    wait_until(
        lambda: counts(basic_app).get("succeeded", 0) == total,
        60,
        "every job to succeed after the last kill",
    )
    settle = time.monotonic() - last_kill
    jobs = [h.job() for h in handles]
    assert all(job.state is JobState.SUCCEEDED for job in jobs)
    ledger = (tmp_path / "ledger.txt").read_text().split("\n")
    ends = [line.split()[1] for line in ledger if line.startswith("end ")]
    assert set(ends) == {f"j{i}" for i in range(total)}, "every job completed at least once"
    duplicates = len(ends) - total
    assert duplicates <= kills * concurrency, (duplicates, kills)
    assert settle <= 30, settle
    print(f"{total} jobs, {kills} kills, {duplicates} duplicate runs, 0 lost, {settle:.1f}s")


def test_sigterm_lets_running_jobs_finish_and_exits_zero(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    running = [basic_app.enqueue("sleep", [1.5, f"t{i}"]) for i in range(2)]
    queued = [basic_app.enqueue("add", [i, i], delay=0) for i in range(5)]
    worker = start_worker(concurrency=2, shutdown_timeout=20)
    wait_until(
        lambda: all(h.status() is JobState.RUNNING for h in running), 30, "both sleeps to run"
    )
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert all(h.status() is JobState.SUCCEEDED for h in running)
    for handle in queued:
        job = handle.job()
        assert job.state in (JobState.SUCCEEDED, JobState.AVAILABLE)
        if job.state is JobState.AVAILABLE:
            assert job.attempt == 0, "a released job keeps its attempt"


def test_shutdown_timeout_returns_unfinished_jobs_without_spending_an_attempt(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    handle = basic_app.enqueue("sleep", [30.0])
    worker = start_worker(concurrency=1, shutdown_timeout=1)
    wait_until(lambda: handle.status() is JobState.RUNNING, 30, "the job to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    job = handle.job()
    assert job.state is JobState.AVAILABLE
    assert job.attempt == 0
    assert job.errors == []


def test_stopped_worker_cannot_overwrite_the_attempt_that_took_over(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    """RELIABILITY test 4 with processes: SIGSTOP past the lease, another worker takes the
    job (attempt 2), SIGCONT; the stale worker's completion changes nothing."""
    handle = basic_app.enqueue("whoami", [2.5])
    stale = start_worker(lease=1, rescue=0.3, concurrency=1)
    wait_until(lambda: handle.status() is JobState.RUNNING, 30, "attempt 1 to start")
    stale.send_signal(signal.SIGSTOP)
    fresh = start_worker(lease=5, rescue=0.3, concurrency=1)
    wait_until(lambda: handle.job().attempt == 2, 30, "attempt 2 to take over")
    stale.send_signal(signal.SIGCONT)
    job = handle.wait(timeout=30)
    assert job.state is JobState.SUCCEEDED
    assert job.attempt == 2
    assert (job.worker or "").split(":")[1] == str(fresh.pid), "attempt 2 was the fresh worker's"
    time.sleep(3)  # the stale worker's child has finished by now and tried to complete
    assert handle.job() == job, "the stale worker changed nothing"


def test_large_payloads_mixed_with_short_jobs_never_stall_the_pipes(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    """Short jobs make children queue work ahead; large arguments and results among them
    must still flow (a large job waits for an idle child rather than fill a busy pipe)."""
    echo = offload.Task[..., object](basic_app, basic_app.registry.get("echo"), EnqueueOptions())
    big = "x" * 300_000
    calls = [offload.call(big if i % 10 == 0 else "small") for i in range(600)]
    handles = echo.enqueue_many(calls)
    start_worker(concurrency=2)
    results = [h.result(timeout=60) for h in handles]
    assert results == [big if i % 10 == 0 else "small" for i in range(600)]


def test_short_jobs_with_kilobyte_arguments_start_in_claim_order(
    basic_app: offload.App, start_worker: StartWorker, tmp_path: Path
) -> None:
    """A busy child holds at most PIPE_BUDGET bytes of queued jobs; the jobs that must wait
    for room still go first once there is some, so one child starts them in claim order."""
    sleep = offload.Task[..., object](basic_app, basic_app.registry.get("sleep"), EnqueueOptions())
    padding = "x" * 1500  # about 10 such jobs fill a busy child's budget
    tags = [f"j{i:04d}-{padding}" for i in range(300)]
    handles = sleep.enqueue_many([offload.call(0.0, tag) for tag in tags])
    start_worker(concurrency=1)
    for handle in handles:
        handle.wait(timeout=60)
    assert counts(basic_app) == {"succeeded": len(tags)}
    ledger = (tmp_path / "ledger.txt").read_text().splitlines()
    started = [line.split()[1] for line in ledger if line.startswith("start ")]
    assert started == tags


def ended(pid: int) -> bool:
    """The process is gone, or a zombie: it runs no more code."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal")
def test_a_killed_workers_children_end_at_once_and_their_jobs_stop(
    basic_app: offload.App, start_worker: StartWorker, tmp_path: Path
) -> None:
    """Its jobs are rerun once their leases expire, so they must not go on running meanwhile."""
    ledger = tmp_path / "ledger.txt"
    for i in range(2):
        basic_app.enqueue("sleep", [10.0, f"orphan{i}"])
    worker = start_worker(concurrency=2)

    def started() -> list[int]:
        lines = ledger.read_text().splitlines() if ledger.exists() else []
        return [int(line.split()[2]) for line in lines if line.startswith("start orphan")]

    wait_until(lambda: len(started()) == 2, 30, "both jobs to start in children")
    children = started()
    assert worker.pid not in children
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    killed = time.monotonic()
    wait_until(lambda: all(ended(pid) for pid in children), 2, "the children to end")
    print(f"children ended {time.monotonic() - killed:.3f}s after the worker was killed")
    assert "end orphan" not in ledger.read_text(), "a dead worker's job ran on to its end"


def test_worker_processes_import_the_offload_under_test() -> None:
    """An editable install of another checkout must not stand in for this tree."""
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    code = "import offload; print(offload.__file__)"
    found = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == offload.__file__
