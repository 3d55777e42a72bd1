"""The peer rig (benchmarks/peers): its workload selection, its scale prediction, the target
table of issue 20, and the two workloads that run offload differently (producer processes,
another executor), each run once on a small SQLite point through the harness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from benchmarks.peers import report
from benchmarks.peers.harness import settle
from benchmarks.peers.run import FULL, base_row, parse_args, scale_prediction, selected
from benchmarks.peers.systems import BY_KEY

from tests.pgserver import PostgresServer

ROOT = Path(__file__).resolve().parents[1]

#: Every target of issue 20, by the start of its row's name, and the backends it has.
TARGETS = {
    "32 threads, 1/call": ("SQLite", "PostgreSQL"),
    "500 coroutines, 1/call": ("SQLite", "PostgreSQL"),
    "8 processes, 1/call": ("PostgreSQL",),
    "enqueue 1/call": ("SQLite", "PostgreSQL"),
    "batch of 1,000": ("SQLite", "PostgreSQL"),
    "drain >= 3x pgqueuer (process executor)": ("SQLite", "PostgreSQL"),
    "drain >= 1.5x pgqueuer (thread executor)": ("SQLite", "PostgreSQL"),
    "drain >= 1.5x pgqueuer (async executor)": ("SQLite", "PostgreSQL"),
    "start latency p50": ("SQLite", "PostgreSQL"),
    "start latency p99": ("SQLite", "PostgreSQL"),
    "drain with 1M queued": ("SQLite", "PostgreSQL"),
    "worker idle RSS": ("SQLite", "PostgreSQL"),
    "no enqueue acknowledged before its commit is durable": ("SQLite", "PostgreSQL"),
}


def ok(value: float, **more: Any) -> dict[str, Any]:
    return {"ok": True, "value": value, **more}


def every_point() -> dict[str, dict[str, list[dict[str, Any]]]]:
    """A run in which every row of the targets measured every workload they need."""
    latency = ok(2.0, p50=2.0, p99=5.0, idle={"main_rss": 40.0, "tree_pss": 60.0})
    offload = {
        kind: [ok(10_000.0)]
        for kind in ("enqueue_one", "batch1000", "threads32", "async500", "procs8")
    }
    offload["drain"] = [ok(10_000.0, steady=11_000.0, prefill_rate=90_000.0)]
    offload["latency"] = [latency]
    offload["scale_small"] = [ok(10_000.0)]
    offload["scale_large"] = [{"ok": True, "runs": [{"steady": 9_000.0}]}]
    sqlite = {k: [{**p, "settings": {"journal_mode": "wal", "synchronous": "FULL"}} for p in ps]
              for k, ps in offload.items()}  # fmt: skip
    points: dict[str, dict[str, list[dict[str, Any]]]] = {
        "offload-sqlite": sqlite,
        "offload-pg": offload,
        "pgqueuer": {"batch1000": [ok(5_000.0)], "drain": [ok(3_000.0)]},
        "raw-sqlite": {"enqueue_one": [ok(2_000.0)]},
        "raw-pg": {"enqueue_one": [ok(2_000.0)]},
        "floor-sqlite": {"latency": [ok(1.0, p50=1.0, p99=4.5)]},
        "floor-pg": {"latency": [ok(1.0, p50=1.0, p99=4.5)]},
    }
    for db in ("sqlite", "pg"):
        for executor in ("thread", "async"):
            points[f"offload-{db}-{executor}"] = {"drain": [ok(6_000.0)]}
    return points


def target_rows(lines: list[str]) -> list[list[str]]:
    return [line.strip("| ").split(" | ") for line in lines[4:]]


def test_the_target_table_has_every_target_of_issue_20_measured() -> None:
    rows = target_rows(report.targets(every_point(), {"fsync": "on", "synchronous_commit": "on"}))
    for start, backends in TARGETS.items():
        found = [r[1] for r in rows if r[0].startswith(start)]
        assert sorted(found) == sorted(backends), start
    assert len(rows) == sum(len(b) for b in TARGETS.values())
    assert not [r for r in rows if "not measured" in r[2] or r[3] == "?"]
    drains = {r[1]: r[2] for r in rows if "thread executor" in r[0]}
    assert drains["SQLite"] == "2.00x (6,000 / 3,000)"
    procs = next(r for r in rows if r[0].startswith("8 processes"))
    assert procs[2:] == ["5.00x (10,000 / 2,000)", "met"]


def test_a_target_says_what_the_run_left_out_or_how_it_failed() -> None:
    points = every_point()
    del points["offload-pg"]["procs8"]
    points["offload-sqlite-async"]["drain"] = [{"ok": False, "error": "timeout"}]
    rows = target_rows(report.targets(points, {"fsync": "off", "synchronous_commit": "on"}))
    procs = next(r for r in rows if r[0].startswith("8 processes"))
    assert procs[2:] == ["not measured (run left out offload-pg procs8)", "?"]
    drain = next(r for r in rows if "async executor" in r[0] and r[1] == "SQLite")
    assert drain[2:] == ["not measured (offload-sqlite-async drain: timeout)", "?"]
    settings = [r for r in rows if r[0].startswith("no enqueue acknowledged")]
    assert [r[3] for r in settings] == ["met", "missed"]  # PostgreSQL with fsync=off


def test_workloads_select_what_each_row_runs_scale_last() -> None:
    offload = BY_KEY["offload-sqlite"]
    assert selected(offload, None, no_scale=False)[-1] == "scale_small"
    assert "scale_small" not in selected(offload, None, no_scale=True)
    assert selected(offload, ["scale", "drain"], no_scale=False) == ["drain", "scale_small"]
    assert selected(BY_KEY["raw-pg"], ["procs8", "drain"], no_scale=False) == ["procs8"]
    assert selected(BY_KEY["offload-pg-thread"], None, no_scale=False) == ["drain", "latency"]
    assert parse_args(["--workloads", "drain,scale"]).workloads == ["drain", "scale"]
    with pytest.raises(SystemExit):
        parse_args(["--workloads", "drain,nope"])


def test_the_scale_prediction_falls_back_on_the_small_runs_without_a_drain() -> None:
    system = BY_KEY["offload-sqlite"]
    assert scale_prediction(system, {}, FULL) == ""  # nothing yet: the small run goes ahead
    small = [ok(10_000.0, prefill_rate=100_000.0)]
    assert scale_prediction(system, {"scale_small": small}, FULL) == ""
    slow = [ok(10.0, prefill_rate=100.0)]
    assert scale_prediction(system, {"scale_small": slow}, FULL).startswith("skipped: predicted")
    failed = [{"ok": False, "error": "timeout"}]
    why = scale_prediction(system, {"drain": failed, "scale_small": small}, FULL)
    assert why == "skipped: its drain did not finish within its bound"


def test_executor_rows_name_their_executor_and_keep_it_at_base() -> None:
    for db in ("sqlite", "pg"):
        for executor in ("thread", "async"):
            row = BY_KEY[f"offload-{db}-{executor}"]
            assert (row.module, row.variant) == ("offload", f"{db}:{executor}")
            assert (row.reference, row.workloads) == (f"offload-{db}", ("drain", "latency"))
            base = base_row(row, "abc", "/tmp/src")
            assert (base.key, base.variant) == (f"{row.key}@base", row.variant)
    assert BY_KEY["offload-sqlite"].variant == "sqlite"  # the default executor, process


def harness(variant: str, workload: dict[str, Any], pg_url: str = "") -> dict[str, Any]:
    """One point of offload on a fresh SQLite file (or, given the URL of a PostgreSQL server,
    a fresh database there), through the rig's harness process."""
    storage = {"storage": "pg", "pg_url": pg_url} if pg_url else {"storage": "sqlite"}
    spec = {"module": "offload", "variant": variant, **storage, "workload": workload}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.peers.harness", json.dumps(spec)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"], (result, done.stderr[-3000:])
    return result


def test_producer_processes_store_every_job() -> None:
    result = harness("sqlite", {"kind": "enqueue_procs", "n": 160, "producers": 8, "timeout": 60})
    assert result["producers"] == 8
    assert result["value"] > 0  # and the harness checked that 160 jobs are queued


def test_an_executor_row_drains_with_its_executor() -> None:
    work = {"kind": "drain", "n": 50, "processes": 2, "timeout": 60, "prefill_timeout": 30}
    result = harness("sqlite:async", work)
    assert "--executor async" in result["worker"]
    assert result["duplicates"] == 0


SCALE = {"kind": "scale", "backlog": 300, "window": 100, "runs": 1, "processes": 2,
         "timeout": 60, "prefill_timeout": 30}  # fmt: skip


def test_a_scale_run_on_postgresql_analyzes_the_filled_database(
    pg_server: PostgresServer,
) -> None:
    result = harness("pg", SCALE, pg_url=pg_server.url)
    assert "offload_jobs" in result["analyzed"]  # VACUUM (ANALYZE) ran before the windows
    assert result["settle_seconds"] > 0
    assert result["runs"][0]["steady"] > 0


def test_other_storage_is_drained_as_filled() -> None:
    assert settle("sqlite:///nowhere/jobs.db") == {}
    assert settle("redis://127.0.0.1:1/0") == {}


def test_the_notes_say_the_rig_analyzes_before_the_scale_windows() -> None:
    lines = report.notes({"points": {}, "notes": {}}, [BY_KEY["offload-pg"], BY_KEY["pgqueuer"]])
    assert any(
        "VACUUM (ANALYZE)" in line and "every PostgreSQL row alike" in line for line in lines
    )
