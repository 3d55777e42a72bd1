"""Batch tasks run by real worker processes (both backends): calls hold one group and at
most ceil(n / max_size) per group, per-item failures retry alone, `max_wait` holds within
its stated tolerance, and a worker killed in the middle of a call loses no item."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import offload
from offload.core.options import EnqueueOptions
from offload.core.states import JobState
from offload.task import Call
from tests.runtime.conftest import PYTHONPATH, ROOT

StartWorker = Callable[..., subprocess.Popen[bytes]]
#: Seconds a worker may take past a group's max_wait to start it: its poll interval (0.5)
#: plus a second for a busy machine. The docs state the same bound.
TOLERANCE = 0.5 + 1.0


@pytest.fixture
def batch_app(db_url: str) -> Iterator[offload.App]:
    """tests.apps.batch's tasks on a fresh, migrated database."""
    from tests.apps import batch

    application = offload.App(db_url)
    application.migrate()
    for name in batch.app.registry.names():
        application.registry.add(batch.app.registry.get(name))
    yield application
    application.close()


@pytest.fixture
def calls_log(tmp_path: Path) -> Path:
    return tmp_path / "calls.jsonl"


@pytest.fixture
def start_worker(
    db_url: str, calls_log: Path, spawned: list[subprocess.Popen[bytes]]
) -> StartWorker:
    """Start `offload worker tests.apps.batch:app` (process executor) with these options."""

    def start(*options: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, OFFLOAD_URL=db_url, PYTHONPATH=PYTHONPATH, BATCH_LOG=str(calls_log))
        command = [sys.executable, "-m", "offload", "worker", "tests.apps.batch:app"]
        process = subprocess.Popen(
            [*command, "--poll-interval", "0.5", "--concurrency", "2", *options],
            cwd=ROOT,
            env=env,
        )
        spawned.append(process)
        return process

    return start


def task_of(app: offload.App, name: str) -> offload.Task[..., Any]:
    return offload.Task(app, app.registry.get(name), EnqueueOptions())


def calls(path: Path, task: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return [line for line in lines if line["task"] == task]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def states(app: offload.App, ids: list[int]) -> Counter[JobState]:
    return Counter(app.backend.jobs.get(job_id).state for job_id in ids)


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(30) == 0


def test_a_thousand_jobs_over_ten_groups(
    batch_app: offload.App, start_worker: StartWorker, calls_log: Path
) -> None:
    collect = task_of(batch_app, "collect")
    handles = collect.enqueue_many(Call((f"g{n % 10}", n)) for n in range(1000))
    ids = [handle.id for handle in handles]
    workers = [start_worker(), start_worker()]
    succeeded = {JobState.SUCCEEDED: len(ids)}
    wait_for(lambda: states(batch_app, ids) == succeeded, "every job to succeed", 120)
    stop(workers)
    for n, handle in enumerate(handles):
        assert handle.result(timeout=1) == n * 2
    made = calls(calls_log, "collect")
    for call in made:
        assert len({group for _, group, _ in call["items"]}) == 1, call
        assert 1 <= len(call["items"]) <= 10
    # First attempts: one call per 10 jobs of a group at most (all were queued up front).
    first = [call for call in made if all(attempt == 1 for _, _, attempt in call["items"])]
    per_group = Counter(call["items"][0][1] for call in first)
    assert set(per_group) == {f"g{n}" for n in range(10)}
    assert all(count <= math.ceil(100 / 10) for count in per_group.values()), per_group
    # A per-item failure retried that item alone: second attempts are exactly the failed.
    failed = {n for n in range(1000) if n % 97 == 0}
    retried = [(job_id, attempt) for call in made for job_id, _, attempt in call["items"]]
    assert sorted(job_id for job_id, attempt in retried if attempt == 2) == sorted(
        ids[n] for n in failed
    )
    assert max(attempt for _, attempt in retried) == 2
    for n in failed:
        job = batch_app.backend.jobs.get(ids[n])
        assert job.attempt == 2
        assert [e["message"] for e in job.errors] == [f"{n} fails once"]
    assert batch_app.backend.jobs.get(ids[1]).attempt == 1


def test_max_wait_is_honoured_within_the_tolerance(
    batch_app: offload.App, start_worker: StartWorker, calls_log: Path
) -> None:
    lonely = task_of(batch_app, "lonely")
    workers = [start_worker()]
    wait_for(lambda: bool(batch_app.worker_statuses()), "the worker to register")
    time.sleep(1.0)  # idle: the worker sleeps until a wake-up or its poll
    handles = [lonely.enqueue("only", 1), lonely.enqueue("only", 2)]
    for handle in handles:
        handle.result(timeout=30)
    stop(workers)
    # The group went once its oldest job had been due max_wait, not before, and within
    # the tolerance after; the younger job went with it.
    oldest, younger = (batch_app.backend.jobs.get(handle.id) for handle in handles)
    assert oldest.started_at is not None and oldest.started_at == younger.started_at
    waited = (oldest.started_at - oldest.run_at).total_seconds()
    assert 1.0 <= waited <= 1.0 + TOLERANCE, waited
    (call,) = calls(calls_log, "lonely")  # both in one call, not one each
    assert [job_id for job_id, _, _ in call["items"]] == [h.id for h in handles]


def test_a_worker_killed_in_the_middle_of_a_call_loses_no_item(
    batch_app: offload.App, start_worker: StartWorker, calls_log: Path
) -> None:
    stall = task_of(batch_app, "stall")
    ids = [h.id for h in stall.enqueue_many(Call(("g", n)) for n in range(20))]
    doomed = start_worker("--lease", "2")
    wait_for(lambda: bool(calls(calls_log, "stall")), "the call to start")
    assert states(batch_app, ids) == {JobState.RUNNING: 20}
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    rescuer = start_worker("--lease", "2")
    succeeded = {JobState.SUCCEEDED: 20}
    wait_for(lambda: states(batch_app, ids) == succeeded, "every item to succeed", 60)
    stop([rescuer])
    for n, job_id in enumerate(ids):
        job = batch_app.backend.jobs.get(job_id)
        assert job.attempt == 2
        assert job.result == n
        assert [e["type"] for e in job.errors] == ["WorkerLost"]
    first, second = calls(calls_log, "stall")
    assert [job_id for job_id, _, _ in first["items"]] == ids
    assert [job_id for job_id, _, _ in second["items"]] == ids
