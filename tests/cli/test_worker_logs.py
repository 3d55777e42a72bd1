"""`offload worker`'s log: a line per job event in text or JSON, the unserved-queue warning,
and the refusals of bad options and of arguments a task cannot take (issue 13)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import offload
from offload.backends.params import RescueParams
from offload.core.states import JobState
from tests.cli.helpers import ROOT, assert_one_line_error, offload_cli, run_json


def _wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_each_job_event_gets_one_line(
    store: offload.App,
    env: dict[str, str],
    tmp_path: Path,
    spawned: list[subprocess.Popen[bytes]],
    fmt: str,
) -> None:
    """Started, succeeded (with its duration), failed (with the delay before its retry),
    dead (with the error), cancelled and lease lost, from a real worker, its log in a file."""
    log_file = tmp_path / "worker.log"
    with log_file.open("wb") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "offload.cli", "worker", "-c", "2", "--lease", "1"],
            cwd=ROOT,
            env={**env, "OFFLOAD_WORKER_LOG_FORMAT": fmt},  # the option's variable
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    spawned.append(worker)
    added = store.enqueue("add", [2, 3])
    failed = store.enqueue("fail", ["no\nluck"])
    assert added.result(timeout=30) == 5
    assert failed.wait(timeout=30).state is JobState.DEAD
    cancelled = store.enqueue("sleep", [30.0])
    _wait_for(lambda: cancelled.status() is JobState.RUNNING, "the job to cancel to run")
    store.cancel(cancelled.id)
    assert cancelled.wait(timeout=30).state is JobState.CANCELLED
    # Lease lost: the worker sleeps past its 1 s lease and the job is rescued meanwhile (then
    # cancelled, so that this worker does not claim it again).
    taken = store.enqueue("sleep", [4.0])
    _wait_for(lambda: taken.status() is JobState.RUNNING, "the job to take over to run")
    worker.send_signal(signal.SIGSTOP)
    try:
        time.sleep(1.5)
        assert store.backend.claims.rescue(RescueParams()) == [taken.id]
        store.cancel(taken.id)
    finally:
        worker.send_signal(signal.SIGCONT)
    _wait_for(lambda: b"lease lost" in log_file.read_bytes(), "the lease-lost line")
    time.sleep(3)  # the run goes on until its end, which is not recorded nor said again
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    lines = log_file.read_text().splitlines()

    if fmt == "text":
        _check_text(lines, added.id, failed.id, cancelled.id, taken.id)
    else:
        _check_json(lines, added.id, failed.id, cancelled.id, taken.id)


def _check_text(lines: list[str], added: int, failed: int, cancelled: int, taken: int) -> None:
    text = "\n".join(lines)
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
    for pattern in [
        rf"{stamp}INFO offload.jobs: job {added} add started \(attempt 1, queue default\)",
        rf"{stamp}INFO offload.jobs: job {added} add succeeded in \d+\.\d{{3}}s",
        rf"INFO offload.jobs: job {failed} fail failed \(attempt 1 of 3\), retry in "
        r"0\.\ds: ValueError: no luck",  # the message on one line
        rf"INFO offload.jobs: job {failed} fail failed \(attempt 2 of 3\), retry in ",
        rf"INFO offload.jobs: job {failed} fail dead after attempt 3: ValueError: no luck$",
        rf"INFO offload.jobs: job {cancelled} sleep cancelled \(attempt 1\)",
        rf"WARNING offload.jobs: job {taken} sleep lease lost while this worker held it",
        r"INFO offload.worker: worker \S+ on queues \['default'\]",  # lines of before stay
    ]:
        assert len(re.findall(pattern, text, re.MULTILINE)) == 1, (pattern, text)
    assert len([line for line in lines if f"job {taken} " in line]) == 2  # started, lost
    assert len([line for line in lines if f"job {failed} fail started" in line]) == 3


def _check_json(lines: list[str], added: int, failed: int, cancelled: int, taken: int) -> None:
    records = [orjson.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["time"])

    def of(job_id: int, event: str) -> list[dict[str, Any]]:
        return [r for r in records if r.get("job_id") == job_id and r.get("event") == event]

    (start,) = of(added, "started")
    assert start == {
        "time": start["time"],
        "level": "INFO",
        "logger": "offload.jobs",
        "message": "job started",
        "event": "started",
        "job_id": added,
        "task": "add",
        "queue": "default",
        "attempt": 1,
    }
    (done,) = of(added, "succeeded")
    assert 0 <= done["duration_s"] < 5
    assert done["message"] == "job succeeded"
    retries = of(failed, "failed")
    assert [r["attempt"] for r in retries] == [1, 2]
    assert all(0 < r["retry_in_s"] <= 0.25 for r in retries)
    assert {(r["error_type"], r["error"]) for r in retries} == {("ValueError", "no luck")}
    (dead,) = of(failed, "dead")
    assert (dead["attempt"], dead["error_type"], dead["error"]) == (3, "ValueError", "no luck")
    assert "retry_in_s" not in dead
    (stopped,) = of(cancelled, "cancelled")
    assert (stopped["task"], stopped["error_type"]) == ("sleep", "JobCancelled")
    (lost,) = of(taken, "lease_lost")
    assert (lost["level"], lost["task"], lost["attempt"]) == ("WARNING", "sleep", 1)
    assert [r["event"] for r in records if r.get("job_id") == taken] == ["started", "lease_lost"]
    assert len(of(failed, "started")) == 3


def test_a_log_format_that_is_not_offered_is_a_usage_error(
    store: offload.App, env: dict[str, str]
) -> None:
    result = offload_cli("worker", "--log-format", "xml", env=env)
    assert_one_line_error(result, 2, "--log-format", "'xml' is not one of 'text', 'json'")
    from_env = offload_cli("worker", env={**env, "OFFLOAD_WORKER_LOG_FORMAT": "xml"})
    assert_one_line_error(from_env, 2, "OFFLOAD_WORKER_LOG_FORMAT", "'xml'")
    assert run_json("workers", env=env) == []  # no worker started
    helped = offload_cli("worker", "--help", env=env)
    assert "OFFLOAD_WORKER_LOG_FORMAT" in helped.stdout


def test_a_worker_names_the_queues_of_its_tasks_that_it_does_not_serve(
    store: offload.App, env: dict[str, str]
) -> None:
    elsewhere = offload_cli("worker", "--burst", "-q", "other", env=env)
    assert elsewhere.returncode == 0, elsewhere.stderr
    warnings = [line for line in elsewhere.stderr.splitlines() if "does not serve" in line]
    assert len(warnings) == 1, elsewhere.stderr
    assert re.search(
        r"WARNING offload.worker: tasks add, async_sleep, \S+, .* and \d+ more use queue "
        r"'default', which this worker does not serve: add -q default$",
        warnings[0],
    ), warnings[0]
    served = offload_cli("worker", "--burst", "-q", "other,default", env=env)
    assert served.returncode == 0, served.stderr
    assert "does not serve" not in served.stderr


def test_cli_enqueue_refuses_arguments_the_task_cannot_take(
    store: offload.App, env: dict[str, str]
) -> None:
    result = offload_cli("enqueue", "add", "--args", "[1, 2, 3]", env=env)
    assert_one_line_error(
        result,
        1,
        "arguments do not match task 'add': too many positional arguments; it takes (a, b)",
    )
    missing = offload_cli("enqueue", "add", "--kwargs", '{"a": 1}', env=env)
    assert_one_line_error(missing, 1, "missing a required argument: 'b'")
    assert store.jobs() == []
    fits = offload_cli("enqueue", "add", "--args", "[1]", "--kwargs", '{"b": 2}', env=env)
    assert fits.returncode == 0, fits.stderr
    assert [job.args for job in store.jobs()] == [[1]]
