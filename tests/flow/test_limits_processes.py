"""Global rate and concurrency limits held by real worker processes (both backends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest

import offload
from offload.core.options import EnqueueOptions
from offload.core.states import JobState
from offload.core.times import from_epoch
from tests.conformance.helpers import RawDB
from tests.runtime.conftest import PYTHONPATH, ROOT

StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def limits_app(db_url: str) -> Iterator[offload.App]:
    """tests.apps.limits' tasks on a fresh database (its limits written by `ready`)."""
    from tests.apps import limits

    application = offload.App(db_url)
    for name in limits.app.registry.names():
        application.registry.add(limits.app.registry.get(name))
    application.migrate()
    yield application
    application.close()


@pytest.fixture
def start_worker(db_url: str, spawned: list[subprocess.Popen[bytes]]) -> StartWorker:
    """Start `offload worker tests.apps.limits:app` (threads) with the given options."""

    def start(*options: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, OFFLOAD_URL=db_url, PYTHONPATH=PYTHONPATH)
        command = [sys.executable, "-m", "offload", "worker", "tests.apps.limits:app"]
        process = subprocess.Popen(
            [*command, "--executor", "thread", "--poll-interval", "0.5", *options],
            cwd=ROOT,
            env=env,
        )
        spawned.append(process)
        return process

    return start


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(30) == 0


def task_of(app: offload.App, name: str) -> offload.Task[..., None]:
    return offload.Task(app, app.registry.get(name), EnqueueOptions())


def stored_time(value: object) -> datetime:
    """A stored time as an aware datetime (epoch seconds on SQLite)."""
    return value if isinstance(value, datetime) else from_epoch(float(str(value)))


def most_in_a_window(starts: list[datetime], seconds: float) -> int:
    """The most starts in any half-open window [t, t + seconds)."""
    starts = sorted(starts)
    return max(
        (sum(1 for s in starts[i:] if (s - first).total_seconds() < seconds))
        for i, first in enumerate(starts)
    )


def test_a_rate_per_key_holds_across_three_workers(
    limits_app: offload.App, start_worker: StartWorker, db_url: str
) -> None:
    paced = task_of(limits_app, "paced")
    paced.enqueue_many([("hot",)] * 300)
    paced.enqueue_many([(f"k{i % 15}",) for i in range(150)])  # ten per other key
    workers = [start_worker("-c", "4") for _ in range(3)]
    raw = RawDB(db_url)
    deadline = time.monotonic() + 60  # the workers' start is not part of the window
    while raw.scalar("SELECT count(*) AS n FROM offload_jobs WHERE started_at IS NOT NULL") == 0:
        assert time.monotonic() < deadline, "no worker started a job"
        time.sleep(0.1)
    time.sleep(11)  # the 10 s checked below, from the first start
    stop(workers)
    rows = raw.query("SELECT limit_key, started_at FROM offload_jobs WHERE started_at IS NOT NULL")
    by_key: dict[str, list[datetime]] = {}
    for row in rows:
        by_key.setdefault(row["limit_key"], []).append(stored_time(row["started_at"]))
    hot = sorted(by_key.pop("hot"))
    assert most_in_a_window(hot, 1.0) <= 20
    first = hot[0]
    in_ten = [s for s in hot if s - first < timedelta(seconds=10)]
    assert len(in_ten) >= 180, f"{len(in_ten)} of the 200 starts 20/s allows in 10 s"
    others = [s for starts in by_key.values() for s in starts]
    assert len(others) == 150, "every job of the other keys ran meanwhile"
    assert max(others) - first < timedelta(seconds=3), "the other keys were held back"


def test_concurrency_per_key_holds_across_four_workers(
    limits_app: offload.App, start_worker: StartWorker, db_url: str
) -> None:
    task_of(limits_app, "capped").enqueue_many(
        [("a", 0.4)] * 10 + [(f"b{i}", 0.4) for i in range(6) for _ in range(2)]
    )
    raw = RawDB(db_url)
    workers = [start_worker("-c", "4") for _ in range(4)]
    most_a = most_others = 0
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        running = Counter(
            {
                row["limit_key"]: row["n"]
                for row in raw.query(
                    "SELECT limit_key, count(*) AS n FROM offload_jobs "
                    "WHERE state = 'running' GROUP BY limit_key"
                )
            }
        )
        most_a = max(most_a, running["a"])
        most_others = max(most_others, sum(n for key, n in running.items() if key != "a"))
        assert running["a"] <= 2, running
        if (
            all(n <= 2 for n in running.values())
            and limits_app.queue_counts()["default"].get("succeeded", 0) == 22
        ):
            break
        time.sleep(0.02)
    stop(workers)
    assert limits_app.queue_counts()["default"]["succeeded"] == 22
    assert most_a == 2, "key a used both of its slots"
    assert most_others >= 6, f"other keys ran in parallel: at most {most_others} at once"


def test_a_killed_worker_s_slot_comes_back_after_rescue(
    limits_app: offload.App, start_worker: StartWorker
) -> None:
    task = task_of(limits_app, "single")
    stuck = task.options(max_attempts=1).enqueue("a", 60.0)
    waiting = task.enqueue("a", 0.0)
    doomed = start_worker("-c", "2", "--lease", "1")
    deadline = time.monotonic() + 20
    while stuck.status() is not JobState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)  # the other job stays held back while the slot is taken
    assert waiting.status() is JobState.AVAILABLE
    assert waiting.job().attempt == 0
    doomed.kill()
    doomed.wait(10)
    start_worker("-c", "2", "--lease", "1")
    job = waiting.wait(timeout=30)
    assert job.state is JobState.SUCCEEDED
    lost = stuck.job()
    assert lost.state is JobState.DEAD
    assert lost.errors[-1]["type"] == "WorkerLost"
