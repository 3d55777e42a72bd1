"""SQLite's plan of each statement that reads the jobs by state, on a database with many
jobs in every state: run once per tree and diff the output to show that a change of the
partial indexes' predicates (schema 19) leaves every plan on the same index.

    PYTHONPATH=TREE/src:TREE python benchmarks/index_plans.py [--jobs 200000]

Statements are taken from the tree on the path (its `.sql` files and macros); each `:param`
is bound to a plausible value, or NULL. Prints `area.name` and the plan's lines.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import offload
from offload.backends.params import JobFilter
from offload.core.states import JobState

#: (area, statement, parameters): every statement whose WHERE names a partial index's states.
STATEMENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("claims", "claim", {"queue": "q1", "limit": 10}),
    ("claims", "probe", {"queue": "q1"}),
    ("claims", "limited_pick", {"queue": "q1", "now": 2e9, "window": 50, "limit": 10}),
    ("claims", "group_claim", {"queue": "q1", "task": "t1", "size": 10, "max_wait": 1.0}),
    ("claims", "group_wait", {"queue": "q1", "task": "t1", "max_wait": 1.0}),
    ("claims", "rescue", {}),
    ("jobs", "supersede", {"key": "k1", "id": 10, "running": 1}),
    ("jobs", "counts", {}),
    ("jobs", "census", {}),
    ("jobs", "prune", {"state": "succeeded", "age": 60.0}),
    ("jobs", "admission_depth", {"queue": "q1", "cap": 100}),
    ("jobs", "admission_wait", {"queue": "q1"}),
    ("queues", "resort", {"name": "q1", "aging": 60.0}),
    ("queues", "stats", {}),
    ("sweep", "shed", {"queue": "q1"}),
    ("sweep", "readmit", {"queue": "q1", "hooked": "[]"}),
    ("sweep", "take", {"queue": "q1", "task": "t1", "limit": 10}),
    ("topics", "busy_keys", {"queue": "topic:t:g"}),
    ("topics", "groups", {}),
    ("workflows", "cancel", {"id": 1}),
]


def _params(sql: str, given: dict[str, Any]) -> dict[str, Any]:
    return {name: given.get(name) for name in set(re.findall(r"(?<![:\w]):(\w+)", sql))}


def _fill(path: str, jobs: int) -> None:
    """`jobs` jobs over 4 queues, 4 tasks and every state, a tenth with each kind of key."""
    states = [str(s) for s in JobState]
    now = time.time()
    rows = [
        (
            f"t{i % 4}",
            f"q{i % 4}",
            states[i % len(states)],
            now - 10 + (i % 20),
            now,
            now - 10 + (i % 20),
            now if states[i % len(states)] in ("succeeded", "dead", "cancelled") else None,
            f"k{i % 100}" if i % 10 == 1 else None,
            f"g{i % 50}" if i % 10 == 2 else None,
            f"l{i % 50}" if i % 10 == 3 else None,
        )
        for i in range(jobs)
    ]
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO offload_jobs (task, queue, state, run_at, enqueued_at, sort_at,"
            " finished_at, replace_key, group_key, limit_key) VALUES (?,?,?,?,?,?,?,?,?,?)",
            rows,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "plans.db")
        app = offload.App(f"sqlite:///{path}")
        app.migrate()
        _fill(path, args.jobs)
        backend: Any = app.backend
        statements = [(f"{a}.{n}", backend_area(backend, a).q[n], g) for a, n, g in STATEMENTS]
        for state in JobState:  # a count and a listing of each state, as the faces filter
            for where in (JobFilter(state=state), JobFilter(state=state, queue="q1")):
                given = backend.jobs._matching(where)
                given.update(below=2**62, limit=20)
                label = f"state={state}" + (" queue" if where.queue else "")
                for kind in ("count", "list"):
                    statements.append(
                        (f"jobs.{kind} {label}", backend.jobs.where(kind, where), given)
                    )
        with sqlite3.connect(path) as db:
            for label, sql, given in statements:
                rows = db.execute("EXPLAIN QUERY PLAN " + sql, _params(sql, given)).fetchall()
                print(label)
                for row in rows:
                    print("   ", row[3])
        app.close()
    print(json.dumps({"jobs": args.jobs, "sqlite": sqlite3.sqlite_version}))


def backend_area(backend: Any, area: str) -> Any:
    """The backend's object of one area (claims, jobs, ...)."""
    return getattr(backend, area)


if __name__ == "__main__":
    main()
