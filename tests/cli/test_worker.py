"""`offload worker` and `offload workers`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import orjson

import offload
from tests.cli.helpers import ROOT, base_env, offload_cli, run_json


def test_worker_burst_drains_the_queue(store: offload.App, env: dict[str, str]) -> None:
    handles = [store.enqueue("add", [n, 10]) for n in range(4)]
    elsewhere = store.enqueue("add", [0, 0], queue="elsewhere")

    result = offload_cli("worker", "--burst", "--concurrency", "2", "--lease", "10", env=env)
    assert result.returncode == 0, result.stderr
    assert "INFO offload.worker" in result.stderr  # logging is on, at INFO, on stderr
    assert [h.result(timeout=0) for h in handles] == [10, 11, 12, 13]
    assert elsewhere.status() is offload.JobState.AVAILABLE  # not one of its queues

    other = offload_cli("worker", "--burst", "--queues", "elsewhere,default", env=env)
    assert other.returncode == 0, other.stderr
    assert elsewhere.status() is offload.JobState.SUCCEEDED
    assert run_json("workers", env=env) == []  # both unregistered when they stopped


def test_workers_lists_a_running_worker_until_it_stops(
    store: offload.App, env: dict[str, str]
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "offload.cli", "worker", "-q", "a", "-q", "b,a", "-c", "3"],
        cwd=ROOT,
        env={**env, "OFFLOAD_WORKER_EXECUTOR": "thread"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        listed: list[dict[str, Any]] = []
        while not listed and time.monotonic() < deadline:
            listed = run_json("workers", env=env)
            time.sleep(0.1)
        assert len(listed) == 1, "the worker never registered"
        (info,) = listed
        assert (info["pid"], info["queues"], info["concurrency"]) == (process.pid, ["a", "b"], 3)
        table = offload_cli("workers", env=env)
        assert info["id"] in table.stdout
        assert "ago" in table.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert run_json("workers", env=env) == []


def test_worker_with_scheduler_fires_and_runs_periodic_jobs(
    db_url: str, env: dict[str, str]
) -> None:
    cron_env = {**env, "OFFLOAD_APP": "tests.apps.cron:app"}
    assert offload_cli("migrate", env=cron_env).returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "offload.cli", "worker", "--scheduler", "--executor", "thread"],
        cwd=ROOT,
        env=cron_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    app = offload.App(db_url)
    try:
        deadline = time.monotonic() + 30
        done: list[offload.Job] = []
        while not done and time.monotonic() < deadline:
            done = app.jobs(task="tick", state="succeeded")
            time.sleep(0.1)
        assert done, "no periodic job ran"
        assert done[0].result in ("all", "last", "skip")
    finally:
        app.close()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


def test_workers_lists_a_running_worker_as_alive(db_url: str) -> None:
    env = base_env(OFFLOAD_APP="tests.apps.basic:app", OFFLOAD_URL=db_url)
    assert offload_cli("migrate", env=env).returncode == 0
    worker = subprocess.Popen(
        [sys.executable, "-m", "offload.cli", "worker", "-c", "1", "--log-level", "WARNING"],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            listed = orjson.loads(offload_cli("workers", "--json", env=env).stdout)
            if listed or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [w["pid"] for w in listed] == [worker.pid]
        assert listed[0]["lost"] is False
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0
    assert orjson.loads(offload_cli("workers", "--json", env=env).stdout) == []


def test_workers_says_who_holds_the_rescue_duty(store: offload.App, env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "offload.cli", "worker", "--executor", "thread"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (listed := run_json("workers", env=env)) or not store.duties():
            assert time.monotonic() < deadline, "the worker never took the rescue duty"
            time.sleep(0.1)
        (info,) = listed
        table = offload_cli("workers", env=env)
        assert f"rescue duty: {info['id']}, term 1" in table.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    # It gave the duty up as it stopped: nobody holds it until a worker takes it.
    assert "rescue duty: nobody now" in offload_cli("workers", env=env).stdout
