"""The `offload` command line, run as a real subprocess against SQLite and PostgreSQL.

Each test drives `python -m offload.cli` with OFFLOAD_APP=tests.apps.basic:app and
OFFLOAD_URL set to a fresh database, then checks what the database holds through the App.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import offload

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.apps.basic:app"
UNREACHABLE_PG = "postgresql://postgres@127.0.0.1:1/x"


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any OFFLOAD_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env.update(extra)
    return env


def offload_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m offload.cli ARGS` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "offload.cli", *args],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int, *fragments: str
) -> None:
    """The command failed with `code` and a single `error:` line naming each fragment."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def env(db_url: str) -> dict[str, str]:
    """Environment naming the test app and a fresh database of each backend."""
    return base_env(OFFLOAD_APP=APP, OFFLOAD_URL=db_url)


@pytest.fixture
def store(db_url: str, env: dict[str, str]) -> Iterator[offload.App]:
    """The database after `offload migrate`, opened here with the test app's tasks."""
    from tests.apps import basic

    migrated = offload_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    app = offload.App(db_url)
    for name in basic.app.registry.names():
        app.registry.add(basic.app.registry.get(name))
    yield app
    app.close()


def run_json(*args: str, env: dict[str, str]) -> Any:
    result = offload_cli(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


# -- migrate --------------------------------------------------------------------------------


def test_migrate_creates_the_schema_the_other_commands_need(
    db_url: str, env: dict[str, str]
) -> None:
    before = offload_cli("jobs", env=env)
    if db_url.startswith("postgresql"):
        # A PostgreSQL App does not migrate by itself: commands name the fix.
        assert_one_line_error(before, 1, "schema is version 0", "offload migrate")
    else:
        # SQLite creates its schema on first use.
        assert before.returncode == 0, before.stderr
        assert before.stdout.strip() == "no jobs"

    first = offload_cli("migrate", env=env)
    again = offload_cli("migrate", env=env)
    assert first.returncode == again.returncode == 0, (first.stderr, again.stderr)
    match = re.search(r"schema version (\d+)$", first.stdout.strip())
    assert match, first.stdout
    assert again.stdout == first.stdout

    app = offload.App(db_url)
    try:
        app.backend.schema.check()  # raises SchemaMismatch unless fully migrated
        assert app.migrate() == int(match.group(1))
    finally:
        app.close()
    after = offload_cli("jobs", env=env)
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == "no jobs"


# -- enqueue and status ---------------------------------------------------------------------


def test_enqueue_stores_the_job_with_the_given_options(
    store: offload.App, env: dict[str, str]
) -> None:
    result = offload_cli(
        "enqueue",
        "add",
        "--args",
        "[2, 3]",
        "--queue",
        "q1",
        "--priority",
        "5",
        "--max-attempts",
        "2",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    job = store.job(int(result.stdout.strip())).job()
    assert (job.task, job.args, job.kwargs, job.queue) == ("add", [2, 3], {}, "q1")
    assert (job.priority, job.max_attempts, job.state) == (5, 2, offload.JobState.AVAILABLE)

    delayed = run_json("enqueue", "sleep", "--kwargs", '{"seconds": 0.1}', "--delay", "60", env=env)
    job = store.job(delayed["id"]).job()
    assert job.kwargs == {"seconds": 0.1}
    assert job.state is offload.JobState.SCHEDULED
    assert (job.run_at - job.enqueued_at).total_seconds() == pytest.approx(60, abs=1)


def test_enqueue_of_an_unknown_task_stores_nothing(store: offload.App, env: dict[str, str]) -> None:
    result = offload_cli("enqueue", "ad", "--args", "[1, 2]", env=env)
    assert_one_line_error(result, 1, "unknown task 'ad'", "did you mean 'add'?")
    assert result.stdout == ""
    assert store.jobs() == []


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--args", "[1, 2", "is not JSON"),
        ("--args", "(1, 2)", "is not JSON"),
        ("--args", '{"a": 1}', "is not a JSON array"),
        ("--kwargs", "[1]", "is not a JSON object"),
    ],
)
def test_enqueue_refuses_arguments_that_are_not_the_right_json(
    store: offload.App, env: dict[str, str], option: str, value: str, problem: str
) -> None:
    result = offload_cli("enqueue", "add", option, value, env=env)
    assert_one_line_error(result, 2, f"Invalid value for '{option}'", problem)
    assert store.jobs() == []


def test_enqueue_refuses_a_negative_delay(store: offload.App, env: dict[str, str]) -> None:
    result = offload_cli("enqueue", "add", "--args", "[1, 2]", "--delay", "-1", env=env)
    assert_one_line_error(result, 1, "delay must be a finite number >= 0")
    assert store.jobs() == []


def test_status_shows_a_job_and_its_errors(store: offload.App, env: dict[str, str]) -> None:
    job_id = store.enqueue("fail", kwargs={"message": "kaput"}, max_attempts=1).id
    drained = offload_cli("worker", "--burst", "--executor", "thread", env=env)
    assert drained.returncode == 0, drained.stderr

    shown = offload_cli("status", str(job_id), env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"job {job_id}" in shown.stdout
    assert re.search(r"state\s+dead", shown.stdout)
    assert re.search(r"attempt\s+1/1", shown.stdout)
    assert "ValueError: kaput" in shown.stdout
    assert "Traceback" not in shown.stdout
    with_traceback = offload_cli("status", str(job_id), "--traceback", env=env)
    assert "Traceback (most recent call last)" in with_traceback.stdout
    assert "raise ValueError(message)" in with_traceback.stdout

    data = run_json("status", str(job_id), env=env)
    assert data["id"] == job_id
    assert (data["state"], data["attempt"], data["max_attempts"]) == ("dead", 1, 1)
    assert data["kwargs"] == {"message": "kaput"}
    assert [(e["type"], e["message"]) for e in data["errors"]] == [("ValueError", "kaput")]


def test_status_shows_the_progress_a_task_reported(store: offload.App, env: dict[str, str]) -> None:
    job_id = store.enqueue("report_progress").id
    drained = offload_cli("worker", "--burst", "--executor", "thread", env=env)
    assert drained.returncode == 0, drained.stderr
    shown = offload_cli("status", str(job_id), env=env)
    assert re.search(r"^progress\s+50% halfway\s*$", shown.stdout, re.MULTILINE), shown.stdout
    assert run_json("status", str(job_id), env=env)["progress"] == {
        "fraction": 0.5,
        "message": "halfway",
    }


def test_status_of_a_missing_job_is_one_line(store: offload.App, env: dict[str, str]) -> None:
    assert_one_line_error(offload_cli("status", "999999", env=env), 1, "no job with id 999999")


# -- listings -------------------------------------------------------------------------------


def test_jobs_pages_newest_first(store: offload.App, env: dict[str, str]) -> None:
    ids = [store.enqueue("add", [n, n]).id for n in range(6)]  # the last page is exactly full
    other = store.enqueue("noop", queue="other").id

    seen: list[int] = []
    before: list[str] = []
    pages = 0
    while True:
        page = run_json("jobs", "--task", "add", "--limit", "2", *before, env=env)
        seen += [job["id"] for job in page["jobs"]]
        assert all(job["task"] == "add" for job in page["jobs"])
        pages += 1
        if page["next_before"] is None:
            break
        assert page["next_before"] == seen[-1]
        before = ["--before", str(page["next_before"])]
    assert seen == sorted(ids, reverse=True)
    assert pages == 3

    table = offload_cli("jobs", "--limit", "2", env=env)
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()[1:-1]]
    assert [int(row[0]) for row in rows] == [other, ids[-1]]
    assert table.stdout.splitlines()[-1] == f"next page: --before {ids[-1]}"

    only_other = run_json("jobs", "--queue", "other", "--state", "available", env=env)
    assert [job["id"] for job in only_other["jobs"]] == [other]
    assert only_other["next_before"] is None


def test_every_flag_is_also_an_environment_variable(
    store: offload.App, env: dict[str, str]
) -> None:
    ids = [store.enqueue("noop").id for _ in range(3)]
    page = run_json("jobs", env={**env, "OFFLOAD_JOBS_LIMIT": "1"})
    assert [job["id"] for job in page["jobs"]] == [ids[-1]]
    assert page["next_before"] == ids[-1]


def test_queues_counts_jobs_per_queue_and_state(store: offload.App, env: dict[str, str]) -> None:
    store.enqueue("add", [1, 2])
    store.enqueue("add", [1, 2], delay=60)
    store.enqueue("noop", queue="mail")
    store.cancel(store.enqueue("noop", queue="mail").id)

    assert run_json("queues", env=env) == {
        "default": {"available": 1, "scheduled": 1},
        "mail": {"available": 1, "cancelled": 1},
    }
    table = offload_cli("queues", env=env)
    assert table.returncode == 0, table.stderr
    lines = [line.split() for line in table.stdout.splitlines()]
    assert lines[0] == ["queue", "scheduled", "available", "cancelled", "total"]
    assert lines[1:] == [["default", "1", "1", "0", "2"], ["mail", "0", "1", "1", "2"]]


# -- changing jobs ----------------------------------------------------------------------------


def test_cancel_then_retry(store: offload.App, env: dict[str, str]) -> None:
    job_id = store.enqueue("add", [1, 2]).id

    cancelled = offload_cli("cancel", str(job_id), env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"job {job_id}: cancelled"
    assert store.job(job_id).status() is offload.JobState.CANCELLED
    assert_one_line_error(
        offload_cli("cancel", str(job_id), env=env), 1, f"cannot cancel job {job_id}"
    )

    retried = offload_cli("retry", str(job_id), env=env)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == f"job {job_id}: available"
    assert store.job(job_id).status() is offload.JobState.AVAILABLE
    assert_one_line_error(
        offload_cli("retry", str(job_id), env=env), 1, f"cannot retry job {job_id}: it is available"
    )
    assert_one_line_error(offload_cli("cancel", "999999", env=env), 1, "no job with id 999999")


# -- workers --------------------------------------------------------------------------------


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
        [sys.executable, "-m", "offload.cli", "worker", "-q", "a,b", "-c", "3"],
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


# -- configuration errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("not-a-url", "malformed database URL 'not-a-url'"),
        ("sqlite://jobs.db", "malformed SQLite URL"),
        ("mysql://localhost/x", "unsupported database URL scheme 'mysql'"),
        (UNREACHABLE_PG, "cannot connect to postgresql://postgres@127.0.0.1:1/x"),
    ],
)
@pytest.mark.parametrize("command", [["jobs"], ["migrate"], ["enqueue", "noop"]])
def test_a_bad_database_url_is_one_line(url: str, fragment: str, command: list[str]) -> None:
    result = offload_cli(*command, env=base_env(OFFLOAD_APP=APP, OFFLOAD_URL=url))
    assert_one_line_error(result, 1, fragment)


def test_a_multi_line_error_message_is_printed_on_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text(
        "import offload\nraise offload.ConfigurationError('first problem\\n  second problem\\n')\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "offload.cli", "--app", "broken_app:app", "jobs"],
        check=False,
        cwd=tmp_path,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line_error(result, 1)
    assert result.stderr == "error: first problem; second problem\n"


def test_commands_need_an_app() -> None:
    result = offload_cli("jobs", env=base_env())
    assert_one_line_error(result, 1, "no app given", "--app", "OFFLOAD_APP")
    missing = offload_cli("--app", "tests.apps.nothing:app", "jobs", env=base_env())
    assert_one_line_error(missing, 1, "cannot import 'tests.apps.nothing'")


def test_usage_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    env = base_env(OFFLOAD_APP=APP, OFFLOAD_URL=f"sqlite:///{tmp_path / 'jobs.db'}")
    assert_one_line_error(offload_cli("jobs", "--state", "nope", env=env), 2, "'nope'")
    assert_one_line_error(offload_cli("status", env=env), 2, "Missing argument 'ID'")
    assert_one_line_error(offload_cli("bogus", env=env), 2, "No such command 'bogus'")
    help_text = offload_cli("--help", env=env)
    assert help_text.returncode == 0
    for command in ("worker", "enqueue", "status", "jobs", "retry", "cancel", "queues"):
        assert re.search(rf"^\s+{command}\s", help_text.stdout, re.MULTILINE), command
