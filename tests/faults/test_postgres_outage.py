"""Workers and producers ride out PostgreSQL outages: restarts, cut links, half-open links.

RELIABILITY.md tests 9, 10 and 12 at CI size; `scripts/soak_outages.py` runs the long
sizes. Every test runs real worker processes against a server of the module's own.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import offload
from offload import BackendUnavailable, JobState
from offload.core.options import EnqueueOptions
from tests.faults.conftest import StartWorker, basic_app
from tests.faults.proxy import Proxy
from tests.pgserver import PostgresServer

pytestmark = pytest.mark.timeout(240)

#: How soon work must resume once the server accepts connections again.
RESUME_WITHIN = 5.0


def _wait_all_succeeded(app: offload.App, ids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        counts = _states(app, ids)
        if counts.get(JobState.SUCCEEDED, 0) == len(ids):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout}s the {len(ids)} jobs are {counts}")
        time.sleep(0.2)


def _states(app: offload.App, ids: list[int]) -> dict[JobState, int]:
    """How many of `ids` are in each state (read in pages of 1,000)."""
    wanted = set(ids)
    counts: dict[JobState, int] = {}
    before: int | None = max(ids) + 1
    while before is not None:
        page = app.jobs(before_id=before, limit=1000)
        for job in page:
            if job.id in wanted:
                counts[job.state] = counts.get(job.state, 0) + 1
        before = page[-1].id if len(page) == 1000 and page[-1].id > min(ids) else None
    return counts


def _time_to_run(app: offload.App, timeout: float = 30.0) -> float:
    """Seconds a job enqueued now takes to succeed (first in line: the top priority)."""
    started = time.monotonic()
    handle = app.enqueue("add", [1, 2], priority=1000)
    assert handle.result(timeout=timeout) == 3
    return time.monotonic() - started


def _alive(workers: list[subprocess.Popen[bytes]], tmp_path: Path) -> None:
    for worker in workers:
        if worker.poll() is not None:
            logs = "\n".join(p.read_text()[-3000:] for p in tmp_path.glob("*.log"))
            pytest.fail(f"a worker exited with {worker.returncode} during the outage:\n{logs}")


def test_workers_ride_out_three_restarts(
    own_pg: PostgresServer, outage_url: str, start_worker: StartWorker, tmp_path: Path
) -> None:
    """5,000 jobs drain while the server restarts fast, immediate, immediate: no worker
    exits, no job is lost, and each time work resumes within 5 s of the server's return."""
    app = basic_app(outage_url)
    try:
        workers = [
            start_worker(outage_url, f"w{n}", executor="thread", concurrency=4, lease=10)
            for n in range(2)
        ]
        assert _time_to_run(app) < 30
        sleep = offload.Task(app, app.registry.get("sleep"), EnqueueOptions())
        ids = [h.id for h in sleep.enqueue_many([(0.004,)] * 5000)]
        for mode in ("fast", "immediate", "immediate"):
            time.sleep(1.0)  # jobs under way
            own_pg.halt(mode)
            time.sleep(2.0)
            _alive(workers, tmp_path)
            own_pg.start()
            resumed = _time_to_run(app, timeout=60)
            assert resumed < RESUME_WITHIN, f"work resumed {resumed:.1f}s after the restart"
        _wait_all_succeeded(app, ids, timeout=120)
        _alive(workers, tmp_path)
        logs = "".join(p.read_text() for p in tmp_path.glob("w*.log"))
        assert "Traceback" not in logs, logs[-3000:]
        assert "database unavailable" in logs and "database back after" in logs, logs[-3000:]
    finally:
        app.close()
