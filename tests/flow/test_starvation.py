"""Priorities without starvation, with real workers: under a stream of high-priority jobs
that keeps two workers saturated, low-priority jobs enqueued at the start still all start
within the bound docs/flow-control.md states: by t + (p_max - p) x aging + D / mu."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import offload
from offload.core.flow import QueuePolicy
from offload.core.options import EnqueueOptions
from offload.core.states import JobState
from tests.conformance.helpers import RawDB
from tests.flow.conftest import StartFlow

AGING = 1.0  # seconds of head start per priority step
HIGH, LOW = 10, 0
LOWS = 20
TARGET = 160  # high jobs the producer keeps waiting: 2 s of work, rides out a stall
JOB = 0.1  # seconds each job sleeps
RUN = 30.0  # seconds the low jobs may take to start, at most
AFTER = 6.0  # seconds the stream goes on once they all have (5 s of it are checked)
SLACK = 1.0  # claim turns and clock reads


def stamp(stored: datetime | float) -> datetime:
    """A stored time as an aware datetime (SQLite stores epoch seconds)."""
    return stored if isinstance(stored, datetime) else datetime.fromtimestamp(stored, UTC)


def seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def test_low_priority_jobs_start_within_the_bound_under_a_saturating_stream(
    flow_app: offload.App, start_flow: StartFlow, db_url: str
) -> None:
    flow_app.backend.queues.set("flow", QueuePolicy(aging=AGING))
    raw = RawDB(db_url)
    work = flow_app.registry.get("work")
    high = offload.Task[..., str](flow_app, work, EnqueueOptions(queue="flow", priority=HIGH))
    depth_sql = (
        "SELECT count(*) AS n FROM offload_jobs WHERE queue = 'flow' "
        "AND state IN ('available', 'scheduled', 'retrying')"
    )
    stop = threading.Event()
    deepest = [0]
    failures: list[BaseException] = []

    def produce() -> None:
        """Keep TARGET high jobs waiting until stopped."""
        producer = offload.App(db_url)
        stream = offload.Task[..., str](producer, work, EnqueueOptions(queue="flow", priority=HIGH))
        try:
            while not stop.is_set():
                depth = int(raw.scalar(depth_sql))
                deepest[0] = max(deepest[0], depth)
                if depth < TARGET:
                    stream.enqueue_many([(JOB,)] * (TARGET - depth))
                stop.wait(0.02)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)
        finally:
            producer.close()

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        for _ in range(2):
            start_flow(queues="flow", concurrency=4)
        deadline = time.monotonic() + 30
        while not raw.query("SELECT id FROM offload_jobs WHERE state = 'succeeded' LIMIT 1"):
            assert time.monotonic() < deadline, "the workers never started"
            time.sleep(0.1)
        low = high.options(priority=LOW)
        lows = low.enqueue_many([(JOB, f"low{i}") for i in range(LOWS)])
        waiting_sql = (
            "SELECT count(*) AS n FROM offload_jobs WHERE priority = ? AND started_at IS NULL"
        )
        deadline = time.monotonic() + RUN
        while raw.scalar(waiting_sql, [LOW]) and time.monotonic() < deadline:
            time.sleep(0.2)  # the bound below judges how long they waited
        time.sleep(AFTER)
    finally:
        stop.set()
        thread.join(30)
    assert failures == [], "the producer failed"
    for handle in lows:
        assert handle.wait(timeout=30).state is JobState.SUCCEEDED
    jobs = [handle.job() for handle in lows]
    t0 = min(job.enqueued_at for job in jobs)
    end = t0 + (flow_app.backend.now() - t0)
    started = [job.started_at for job in jobs]
    assert all(s is not None for s in started)
    waits = [seconds(s, job.enqueued_at) for s, job in zip(started, jobs, strict=True) if s]
    # The drain rate mu while the lows waited, from the database's started_at.
    rows = raw.query("SELECT started_at FROM offload_jobs WHERE started_at IS NOT NULL")
    stamps = [stamp(row["started_at"]) for row in rows]
    window = [s for s in stamps if t0 <= s <= end]
    mu = len(window) / seconds(end, t0)
    depth = max(deepest[0], TARGET) + LOWS
    bound = (HIGH - LOW) * AGING + depth / mu
    print(
        f"mu={mu:.1f}/s depth={depth} bound={bound:.2f}s waits={min(waits):.2f}..{max(waits):.2f}s"
    )
    assert max(waits) <= bound + SLACK, (waits, bound)
    # The stream saturated the workers: the lows waited out (nearly) their whole handicap,
    # and high jobs kept starting after the last low had.
    assert min(waits) >= (HIGH - LOW) * AGING - SLACK, waits
    last_low = max(s for s in started if s)
    assert sum(1 for s in stamps if s > last_low) >= mu * 5, "the stream stopped early"
