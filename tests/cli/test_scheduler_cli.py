"""`offload scheduler` stops cleanly on SIGTERM/SIGINT, logs in text or JSON, and takes
retention periods; so does `offload worker --scheduler`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import offload
from offload.cli.group import cli
from offload.core.states import JobState
from offload.runtime.scheduler import DEFAULT_RETENTION, Scheduler
from offload.runtime.worker import Worker
from tests.cli.helpers import ROOT, assert_one_line_error, base_env, offload_cli

CRON_APP = "tests.apps.cron:app"
DAY = 86400.0


def _wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _run_scheduler(
    db_url: str, tmp_path: Path, spawned: list[subprocess.Popen[bytes]], *options: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """`offload scheduler OPTIONS` of the cron app, its stderr in a file; once it fired."""
    env = base_env(OFFLOAD_APP=CRON_APP, OFFLOAD_URL=db_url)
    assert offload_cli("migrate", env=env).returncode == 0
    log = tmp_path / "scheduler.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "offload.cli", "scheduler", "--interval", "0.2", *options],
            cwd=ROOT,
            env=env,
            stderr=stderr,
        )
    spawned.append(process)
    app = offload.App(db_url)
    try:
        _wait_for(lambda: app.jobs(limit=1), "a tick to be enqueued")
    finally:
        app.close()
    return process, log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_scheduler_after_its_turn_with_one_line(
    db_url: str, tmp_path: Path, spawned: list[subprocess.Popen[bytes]], signum: int
) -> None:
    process, log = _run_scheduler(db_url, tmp_path, spawned)
    process.send_signal(signum)
    assert process.wait(10) == 0
    text = log.read_text()
    assert text.count(f"signal {signum}: stopping the scheduler") == 1, text
    assert "Traceback" not in text


def test_the_scheduler_logs_json_lines(
    db_url: str, tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    process, log = _run_scheduler(db_url, tmp_path, spawned, "--log-format", "json")
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    records = [orjson.loads(line) for line in log.read_text().splitlines()]
    assert all(r["logger"] == "offload.scheduler" for r in records), records
    messages = [r["message"] for r in records]
    assert any(m.startswith("schedule every_second_") for m in messages), messages
    (stop,) = [r for r in records if r["message"] == "signal 15: stopping the scheduler"]
    assert stop["level"] == "INFO"


def test_retention_options_prune_through_the_cli(
    store: offload.App, env: dict[str, str], spawned: list[subprocess.Popen[bytes]]
) -> None:
    """A period of 0 prunes at the first turn; `never` keeps; the others keep defaults."""
    done = store.enqueue("add", [1, 2])
    dead = store.enqueue("fail", [])
    cancelled = store.enqueue("add", [3, 4])
    store.cancel(cancelled.id)
    worker = subprocess.Popen(
        [sys.executable, "-m", "offload.cli", "worker", "--executor", "thread"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    spawned.append(worker)
    assert done.wait(timeout=30).state is JobState.SUCCEEDED
    assert dead.wait(timeout=30).state is JobState.DEAD
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    keep = ["--keep-succeeded", "0s", "--keep-dead", "never", "--log-level", "warning"]
    process = subprocess.Popen(
        [sys.executable, "-m", "offload.cli", "scheduler", *keep],
        cwd=ROOT,
        env=env,
    )
    spawned.append(process)
    _wait_for(lambda: not store.jobs(state="succeeded"), "the succeeded job to be pruned")
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    remaining = {job.id for job in store.jobs()}
    assert remaining == {dead.id, cancelled.id}  # never; cancelled: 7 days by default


def _retention_of(
    args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[JobState, float] | None:
    """The retention of the scheduler that `offload ARGS` would run (it runs nothing)."""
    seen: dict[str, dict[JobState, float] | None] = {}

    def scheduler_run(self: Scheduler) -> int:
        seen["retention"] = self.retention
        return 0

    def worker_run(self: Worker) -> int:
        seen["retention"] = None if self.scheduler is None else self.scheduler.retention
        return 0

    monkeypatch.setattr(Scheduler, "run", scheduler_run)
    monkeypatch.setattr(Worker, "run", worker_run)
    monkeypatch.setattr("offload.cli.workers.keep_freed_memory", lambda: None)
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    return seen["retention"]


def test_retention_options_reach_the_scheduler_of_both_commands(
    store: offload.App, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = ["--keep-succeeded", "12h", "--keep-cancelled", "never", "--keep-dead", "90m"]
    wanted = {JobState.SUCCEEDED: 12 * 3600.0, JobState.DEAD: 90 * 60.0}
    assert _retention_of(["scheduler", *keep], env, monkeypatch) == wanted
    worker = ["worker", "--executor", "thread", "--scheduler"]
    assert _retention_of([*worker, *keep], env, monkeypatch) == wanted
    # One option given: the others keep their defaults; none given: the defaults.
    one = _retention_of(["scheduler", "--keep-dead", "2w"], env, monkeypatch)
    assert one == {**DEFAULT_RETENTION, JobState.DEAD: 14 * DAY}
    assert _retention_of(["scheduler"], env, monkeypatch) == DEFAULT_RETENTION
    from_env = {**env, "OFFLOAD_WORKER_KEEP_SUCCEEDED": "1d"}
    assert _retention_of(worker, from_env, monkeypatch) == {
        **DEFAULT_RETENTION,
        JobState.SUCCEEDED: DAY,
    }


@pytest.mark.parametrize("value", ["7", "soon", "-1d", "3y", "9" * 30 + "d"])
def test_a_bad_retention_period_is_a_usage_error(
    db_url: str, env: dict[str, str], value: str
) -> None:
    result = offload_cli("scheduler", "--keep-succeeded", value, env=env)
    assert_one_line_error(result, 2, "--keep-succeeded", "not a retention period", "'never'")


def test_retention_options_need_a_scheduler_in_the_worker(db_url: str, env: dict[str, str]) -> None:
    result = offload_cli("worker", "--keep-dead", "1d", env=env)
    assert_one_line_error(result, 2, "--keep-dead", "need --scheduler")
