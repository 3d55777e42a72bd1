"""`offload demo`: the bundled workload runs to completion and reports what it measured."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import offload
from offload.demo.run import Workload, _check

ROOT = Path(__file__).resolve().parent.parent


def run_demo(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """`offload demo ARGS` in an empty directory, with no app or database configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env["TMPDIR"] = str(tmp)
    return subprocess.run(
        [sys.executable, "-m", "offload.cli", "demo", *args],
        cwd=tmp,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """An empty directory with a short path: the demo's worker opens a Unix socket in its
    TMPDIR, whose path must fit 107 bytes, and pytest-xdist's `tmp_path` is 10 longer."""
    directory = Path(tempfile.mkdtemp(prefix="demo-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("size", [20, 21, 199, 200, 2000, 12_345])
def test_workload_adds_up_to_the_requested_size(size: int) -> None:
    workload = Workload.of_size(size)
    assert workload.total == size
    assert min(workload.thumbnails, workload.emails, workload.reminders, workload.posts) >= 1
    assert workload.followers_per_post >= 1


class Flaky(Exception):
    pass


def _dead(job_id: int, error_type: str) -> offload.Job:
    now = datetime.now(UTC)
    return offload.Job(
        id=job_id,
        task="demo.send_email",
        queue="mail",
        args=[],
        kwargs={},
        priority=0,
        state=offload.JobState.DEAD,
        attempt=4,
        max_attempts=4,
        run_at=now,
        enqueued_at=now,
        started_at=now,
        finished_at=now,
        lease_until=None,
        worker=None,
        result=None,
        errors=[{"type": error_type, "message": "it broke"}],
    )


def test_only_the_designed_failure_may_kill_demo_jobs() -> None:
    designed = f"{__name__}.Flaky"
    _check([_dead(1, designed), _dead(2, designed)], expected_failure=Flaky)
    with pytest.raises(offload.OffloadError, match=r"^1 of 2 jobs died unexpectedly; job 3 .*Lost"):
        _check([_dead(1, designed), _dead(3, "WorkerLost")], expected_failure=Flaky)


def test_demo_runs_the_workload_and_reports_throughput_and_latency(short_tmp: Path) -> None:
    result = run_demo("--jobs", "200", tmp=short_tmp)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    jobs = re.search(r"jobs\s+([\d,]+) \(([\d,]+) succeeded, ([\d,]+) dead\)", out)
    assert jobs, out
    total, succeeded, dead = (int(n.replace(",", "")) for n in jobs.groups())
    assert total >= 200  # at-least-once: a fan-out job that ran twice adds deliveries
    assert succeeded + dead == total
    assert re.search(r"throughput\s+[\d,]+ jobs/s", out), out
    assert re.search(r"enqueue->start\s+p50 [\d,]+ ms, p99 [\d,]+ ms", out), out
    assert re.search(rf"^dead\s+{dead} *$", out, re.MULTILINE), out
    assert list(short_tmp.iterdir()) == []  # the throwaway database is gone


def test_demo_keeps_its_database_on_request(short_tmp: Path) -> None:
    kept = short_tmp / "demo.db"
    result = run_demo("--jobs", "50", "--keep", str(kept), tmp=short_tmp)
    assert result.returncode == 0, result.stderr
    assert f"database kept in {kept}" in result.stdout

    app = offload.App(f"sqlite:///{kept}")
    try:
        jobs = app.jobs(limit=1000)
        states = {job.state for job in jobs}
        tasks = {job.task for job in jobs}
    finally:
        app.close()
    assert len(jobs) >= 50
    assert states <= {offload.JobState.SUCCEEDED, offload.JobState.DEAD}
    assert tasks == {"demo.thumbnail", "demo.send_email", "demo.publish", "demo.deliver"}

    again = run_demo("--jobs", "50", "--keep", str(kept), tmp=short_tmp)
    assert again.returncode == 1
    assert again.stderr.strip() == f"error: {kept} already exists: --keep needs a new file name"


def test_the_topics_demo_delivers_each_url_once_through_both_stages(short_tmp: Path) -> None:
    done = run_demo("topics", "--messages", "300", tmp=short_tmp)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.match(r"results +300 messages +group writer +cursor +300 +lag 0 +dead 0", lines[0])
    assert re.match(r"urls +300 messages +group fetchers +cursor +300 +lag 0 +dead 0", lines[1])
    assert lines[-1] == "results.txt holds each of the 300 urls exactly once"
    assert list(short_tmp.iterdir()) == [], "the demo leaves nothing behind"
