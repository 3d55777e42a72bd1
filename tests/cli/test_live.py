"""Live views run as the real CLI: they redraw until SIGINT (exit 0, no traceback), print
JSON lines with --json, and `status --follow` ends by itself when its job finishes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import orjson
import pytest

import offload
from tests.cli.helpers import ROOT


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start `python -m offload ARGS`; return once it has begun refreshing."""
    process = subprocess.Popen(
        [sys.executable, "-m", "offload", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = process.stderr.readline()
    assert first.startswith("refreshing every "), first + process.stderr.read()
    return process


def interrupt(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Send SIGINT as Ctrl-C does; return what the process printed after it stopped."""
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    return out, err


@pytest.mark.parametrize(
    ("command", "shown"),
    [(["jobs", "--watch"], "noop"), (["queues", "-w"], "mail !")],
    ids=["jobs", "queues"],
)
def test_a_watch_renders_and_exits_cleanly_on_sigint(
    store: offload.App, env: dict[str, str], command: list[str], shown: str
) -> None:
    store.enqueue("noop", queue="mail")
    process = start(*command, "--interval", "0.2", env=env)
    time.sleep(0.7)  # a few refreshes
    out, err = interrupt(process)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "error" not in err
    assert shown in out


def test_watch_with_json_prints_one_document_per_refresh(
    store: offload.App, env: dict[str, str]
) -> None:
    job_id = store.enqueue("noop").id
    process = start("jobs", "--watch", "--json", "--interval", "0.2", env=env)
    assert process.stdout is not None
    documents = [orjson.loads(process.stdout.readline()) for _ in range(3)]
    store.cancel(job_id)
    time.sleep(0.5)
    out, err = interrupt(process)
    assert process.returncode == 0, err
    for document in documents:
        assert [job["id"] for job in document["jobs"]] == [job_id]
    later = [orjson.loads(line) for line in out.splitlines()]
    assert later, "no refresh after the cancel"
    assert later[-1]["jobs"][0]["state"] == "cancelled"


def test_status_follow_stops_by_itself_when_the_job_finishes(
    store: offload.App, env: dict[str, str]
) -> None:
    job_id = store.enqueue("add", [1, 2], delay=3600).id
    process = start("status", str(job_id), "--follow", "--interval", "0.2", env=env)
    time.sleep(0.5)
    assert process.poll() is None, "it stopped while the job was still scheduled"
    store.cancel(job_id)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out.rstrip().endswith(f"job {job_id} finished: cancelled")
    assert f"job {job_id}" in out.splitlines()[0]


def test_status_follow_of_a_finished_job_prints_it_once(
    store: offload.App, env: dict[str, str]
) -> None:
    job_id = store.enqueue("noop").id
    store.cancel(job_id)
    process = start("status", str(job_id), "--follow", "--json", env=env)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    (line,) = out.splitlines()
    assert orjson.loads(line)["state"] == "cancelled"
