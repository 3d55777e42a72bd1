"""Shedding and the sweep with real processes: an overloaded queue sheds its low-priority
waiting jobs (and nothing else), a scheduler's sweep re-admits them once workers drain the
queue, and a task's sweep hook gets its shed jobs' arguments instead."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson

import offload
from offload.core.flow import QueuePolicy
from offload.core.options import EnqueueOptions
from offload.core.states import JobState
from tests.cli.helpers import base_env, run_json
from tests.conformance.helpers import RawDB
from tests.flow.conftest import StartFlow

SHED_DEPTH = 20
APP = "tests.apps.flow:app"
POLICY = QueuePolicy(shed_priority=1, shed_depth=SHED_DEPTH, resume_depth=5).check()
LOW, HIGH = 0, 2


def wait_for(what: str, done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def task(app: offload.App, name: str, priority: int) -> offload.Task[..., object]:
    options = EnqueueOptions(queue="flow", priority=priority)
    return offload.Task[..., object](app, app.registry.get(name), options)


def test_low_jobs_are_shed_under_overload_and_the_sweep_readmits_them_once_drained(
    flow_app: offload.App, start_flow: StartFlow, db_url: str
) -> None:
    flow_app.backend.queues.set("flow", POLICY)
    raw = RawDB(db_url)
    start_flow("scheduler")
    lows, highs = [], []
    for i in range(30):  # a fast producer, no worker yet: the queue overloads
        lows += task(flow_app, "work", LOW).enqueue_many([(0.05, f"low{i}")])
        highs += task(flow_app, "work", HIGH).enqueue_many([(0.05, f"high{i}")])

    wait_for("every low job is shed", lambda: {h.job().state for h in lows} == {JobState.SHED})
    assert {h.job().state for h in highs} == {JobState.AVAILABLE}, "only low jobs are shed"
    shed = flow_app.jobs(state="shed", queue="flow", limit=100)
    assert sorted(j.id for j in shed) == sorted(h.id for h in lows)
    env = base_env(OFFLOAD_URL=db_url, OFFLOAD_APP=APP)
    listed = run_json("jobs", "--state", "shed", "--limit", "100", env=env)
    assert sorted(j["id"] for j in listed["jobs"]) == sorted(h.id for h in lows)

    # Drain: the sweep brings the low jobs back, never more waiting than shed_depth.
    waiting_low = (
        "SELECT count(*) AS n FROM offload_jobs WHERE queue = 'flow' AND priority = 0 "
        "AND state IN ('available', 'scheduled', 'retrying')"
    )
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], int(raw.scalar(waiting_low)))
            stop.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        start_flow(queues="flow", concurrency=2)
        for handle in highs + lows:
            assert handle.wait(timeout=60).state is JobState.SUCCEEDED
    finally:
        stop.set()
        sampler.join(10)
    assert 0 < peak[0] <= SHED_DEPTH
    assert [h.job().attempt for h in lows] == [1] * len(lows)  # re-admitted, run once


def test_a_tasks_sweep_hook_gets_its_shed_jobs_once_and_they_end_done(
    flow_app: offload.App, start_flow: StartFlow, sweep_file: Path
) -> None:
    flow_app.backend.queues.set("flow", POLICY)
    urgent = task(flow_app, "fanout", HIGH).enqueue_many([(u,) for u in range(1000, 1005)])
    shed = task(flow_app, "fanout", LOW).enqueue_many([(u,) for u in range(30)])
    for _ in range(2):  # two replicas: the hook still sees each job once
        start_flow("scheduler")

    for handle in shed:
        job = handle.wait(timeout=60)
        assert job.state is JobState.SUCCEEDED
        assert job.result == {"swept": True}
    calls = [orjson.loads(line) for line in sweep_file.read_bytes().splitlines()]
    users = sorted(args[0] for batch in calls for args in batch)
    assert users == list(range(30))
    # The urgent jobs were never shed: no worker serves the queue, so they still wait.
    assert {h.job().state for h in urgent} == {JobState.AVAILABLE}
