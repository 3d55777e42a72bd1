"""A SIGTERM sent to a worker's whole process group (systemd's default KillMode, a
supervisor's killpg) stops the worker gracefully: its job processes ignore it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import offload
from offload.core.states import JobState
from tests.runtime.conftest import PYTHONPATH, ROOT


def _worker_group(db_url: str, spawned: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """`offload worker` (process executor) in a session, and so a process group, of its own."""
    env = dict(os.environ, OFFLOAD_URL=db_url, PYTHONPATH=PYTHONPATH)
    options = ["-c", "1", "--shutdown-timeout", "30", "--log-level", "warning"]
    process = subprocess.Popen(
        [sys.executable, "-m", "offload.cli", "--app", "tests.apps.basic:app", "worker", *options],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    spawned.append(process)
    return process


def _wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_sigterm_to_the_whole_group_lets_the_running_job_finish(
    basic_app: offload.App, db_url: str, spawned: list[subprocess.Popen[bytes]]
) -> None:
    worker = _worker_group(db_url, spawned)
    handle = basic_app.enqueue("sleep", [2.0, ""])
    _wait_for(lambda: handle.status() is JobState.RUNNING, "the job to run")
    os.killpg(worker.pid, signal.SIGTERM)  # the worker, its fork server and its child
    assert worker.wait(30) == 0
    job = handle.job()
    assert job.state is JobState.SUCCEEDED, job.errors
    assert job.attempt == 1
    # The fork server and the child ended with the worker.
    _wait_for(lambda: _group_gone(worker.pid), "the worker's processes to end", timeout=10)


def test_a_second_sigterm_to_the_group_stops_at_once(
    basic_app: offload.App, db_url: str, spawned: list[subprocess.Popen[bytes]]
) -> None:
    worker = _worker_group(db_url, spawned)
    handle = basic_app.enqueue("sleep", [60.0, ""])
    _wait_for(lambda: handle.status() is JobState.RUNNING, "the job to run")
    os.killpg(worker.pid, signal.SIGTERM)
    time.sleep(0.5)
    assert worker.poll() is None, "the first signal let the job run on"
    began = time.monotonic()
    os.killpg(worker.pid, signal.SIGTERM)
    assert worker.wait(10) == 0
    assert time.monotonic() - began < 5
    _wait_for(lambda: _group_gone(worker.pid), "the worker's processes to end", timeout=10)
    job = handle.job()  # given back unfinished, its attempt not spent on a failure
    assert job.state is JobState.AVAILABLE, job.state
    assert not job.errors
