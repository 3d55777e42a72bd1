"""`offload queues set`, `pause`, `resume` and `show`, and the flow control columns and
fields of `offload queues`; bad input changes nothing."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

import offload
from offload.core.flow import QueuePolicy, Rate
from offload.core.records import WorkerInfo
from tests.cli.helpers import ROOT, assert_one_line_error, offload_cli, run_json
from tests.conformance.helpers import RawDB


def _policy(store: offload.App, name: str) -> QueuePolicy | None:
    found = [state.policy for state in store.queue_policies() if state.name == name]
    return found[0] if found else None


def _queue_rows(store: offload.App) -> list[dict[str, Any]]:
    return RawDB(store.url).query("SELECT * FROM offload_queues ORDER BY name")


def test_set_changes_the_given_settings_and_none_clears_one(
    store: offload.App, env: dict[str, str]
) -> None:
    store.enqueue("noop", queue="mail")

    first = offload_cli(
        "queues", "set", "mail", "--max-depth", "50", "--rate-limit", "20/s",
        "--concurrency", "4", "--aging", "5", env=env,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout == "mail: max-depth 50, aging 5.0, concurrency 4, rate-limit 20/s\n"
    assert _policy(store, "mail") == QueuePolicy(
        max_depth=50, aging=5.0, concurrency=4, rate=Rate(20, 1.0)
    )

    second = run_json("queues", "set", "mail", "--concurrency", "none", "--aging", "none", env=env)
    assert second == QueuePolicy(max_depth=50, rate=Rate(20, 1.0)).to_json()
    assert _policy(store, "mail") == QueuePolicy(max_depth=50, rate=Rate(20, 1.0))


def test_pause_and_resume(store: offload.App, env: dict[str, str]) -> None:
    store.enqueue("noop", queue="mail")

    paused = offload_cli("queues", "pause", "mail", env=env)
    assert (paused.returncode, paused.stdout) == (0, "mail: paused\n"), paused.stderr
    assert [(s.name, s.paused) for s in store.queue_policies()] == [("mail", True)]
    assert run_json("queues", env=env)["mail"]["paused"] is True

    resumed = offload_cli("queues", "resume", "mail", env=env)
    assert (resumed.returncode, resumed.stdout) == (0, "mail: resumed\n"), resumed.stderr
    assert [(s.name, s.paused) for s in store.queue_policies()] == [("mail", False)]
    assert run_json("queues", env=env)["mail"]["paused"] is False


def test_show_prints_the_policy_and_figures(store: offload.App, env: dict[str, str]) -> None:
    for _ in range(3):
        store.enqueue("noop", queue="mail")
    store.set_queue("mail", max_depth=10, concurrency=2)
    store.pause_queue("mail")
    now = store.backend.now()
    store.backend.workers.register(WorkerInfo("w1", "h", 1, ["mail"], 2, now, now))

    shown = run_json("queues", "show", "mail", env=env)

    oldest = shown.pop("oldest_available")
    assert isinstance(oldest, float) and 0 <= oldest < 60
    assert shown == {
        "name": "mail",
        "counts": {"available": 3},
        "workers": ["w1"],
        "served": True,
        "paused": True,
        "policy": QueuePolicy(max_depth=10, concurrency=2).to_json(),
        "drain_rate": 0.0,
        "held": 0,
        "shed": 0,
        "limits": ["2 at once"],
        "task_limits": {},
    }
    table = offload_cli("queues", "show", "mail", env=env)
    assert table.returncode == 0, table.stderr
    pairs = [line.split(None, 1) for line in table.stdout.splitlines()[1:]]
    rows = {label: value.strip() for label, value in pairs}
    assert rows["policy"] == "max-depth 10, concurrency 2"
    assert rows["paused"] == "yes"
    assert rows["jobs"] == "available 3"
    assert rows["limits"] == "2 at once"
    assert rows["workers"] == "w1"


def test_the_listing_has_the_flow_columns(store: offload.App, env: dict[str, str]) -> None:
    ids = [store.enqueue("noop", queue="mail").id for _ in range(3)]
    store.set_queue("mail", concurrency=1, rate_limit="5/m")
    store.queue("idle", max_depth=7)  # a queue with a policy and no jobs is listed too
    store.pause_queue("mail")
    raw = RawDB(store.url)
    raw.execute("UPDATE offload_jobs SET state = 'running' WHERE id = ?", [ids[0]])
    raw.execute("UPDATE offload_jobs SET state = 'shed' WHERE id = ?", [ids[1]])

    table = offload_cli("queues", env=env)

    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "queue", "available", "running", "shed", "total", "workers", "drain/s", "oldest",
        "held", "paused", "limits",
    ]  # fmt: skip
    assert lines[1].split() == ["idle", "0", "0", "0", "0", "0", "-", "-", "0", "-", "-"]
    mail = lines[2].split()
    assert re.fullmatch(r"\d+s", mail.pop(8)), lines[2]  # the oldest due job's wait
    assert mail[:10] == ["mail", "!", "1", "1", "1", "3", "0", "-", "1", "yes"]
    assert lines[2].endswith("1 at once, 5/m")
    listing = run_json("queues", env=env)
    assert listing["mail"]["held"] == 1 and listing["mail"]["shed"] == 1
    assert listing["idle"] == {
        "counts": {},
        "workers": [],
        "served": False,
        "paused": False,
        "policy": QueuePolicy(max_depth=7).to_json(),
        "drain_rate": 0.0,
        "oldest_available": None,
        "held": 0,
        "shed": 0,
        "limits": [],
        "task_limits": {},
    }


@pytest.mark.parametrize(
    ("args", "code", "named"),
    [
        (["set", "mial", "--max-depth", "5"], 1, "unknown queue 'mial'; did you mean 'mail'?"),
        (["pause", "nope"], 1, "unknown queue 'nope'; known queues: default, mail"),
        (["resume", "nope"], 1, "unknown queue 'nope'"),
        (["show", "nope"], 1, "unknown queue 'nope'"),
        (["set", "mail", "--max-depth", "0"], 1, "max_depth must be an int >= 1, got 0"),
        (["set", "mail", "--concurrency", "-3"], 1, "concurrency must be an int >= 1, got -3"),
        (["set", "mail", "--rate-limit", "fast"], 1, "rate limit 'fast' does not parse"),
        (["set", "mail", "--admit-depth", "500"], 1, "admit_depth=500 is above max_depth=100"),
        (["set", "mail", "--max-depth", "abc"], 2, "'abc' is not an integer or 'none'"),
        (["set", "mail", "--overload", "drop"], 2, "'drop' is not one of 'refuse', 'shed'"),
        (["set", "mail"], 2, "nothing to change"),
    ],
)
def test_bad_input_is_one_error_line_and_changes_nothing(
    store: offload.App, env: dict[str, str], args: list[str], code: int, named: str
) -> None:
    store.enqueue("noop")
    store.enqueue("noop", queue="mail")
    store.set_queue("mail", max_depth=100)
    before = _queue_rows(store)

    result = offload_cli("queues", *args, env=env)

    assert_one_line_error(result, code, named)
    assert _queue_rows(store) == before


def test_the_group_keeps_its_help_and_lists_the_commands(env: dict[str, str]) -> None:
    result = offload_cli("queues", "--help", env=env)
    assert result.returncode == 0, result.stderr
    for command in ("set", "pause", "resume", "show"):
        assert f"\n  {command} " in result.stdout
    assert "--watch" in result.stdout and "--json" in result.stdout


def test_a_running_worker_serves_its_queues_until_it_stops(
    store: offload.App, env: dict[str, str], spawned: list[subprocess.Popen[str]]
) -> None:
    store.enqueue("noop", queue="mail", delay=3600)  # known, and nothing for the worker to do
    assert run_json("queues", "show", "mail", env=env)["served"] is False
    process = subprocess.Popen(
        [sys.executable, "-m", "offload.cli", "worker", "-q", "mail", "-c", "1"],
        cwd=ROOT,
        env={**env, "OFFLOAD_WORKER_EXECUTOR": "thread"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    spawned.append(process)
    try:
        deadline = time.monotonic() + 30
        shown = run_json("queues", "show", "mail", env=env)
        while not shown["served"] and time.monotonic() < deadline:
            time.sleep(0.1)
            shown = run_json("queues", "show", "mail", env=env)
        assert shown["served"] is True, "the worker never registered"
        [worker] = shown["workers"]
        assert run_json("queues", env=env)["mail"]["workers"] == [worker]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    shown = run_json("queues", "show", "mail", env=env)
    assert (shown["served"], shown["workers"]) == (False, [])
