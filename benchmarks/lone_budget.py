"""Where a lone producer's enqueue spends its time next to the raw one-row commit (issue 20's
"one producer, one job per call >= 0.8x raw"), per call, on both backends.

Rows, interleaved in rounds on one storage each (medians of the rounds):
* `raw`: the peer rig's raw row (benchmarks/peers/adapters/raw.py): SQLite `BEGIN
  IMMEDIATE; INSERT; COMMIT` of one integer, PostgreSQL one autocommit INSERT.
* `insert_one`: offload's insert statement run directly with the parameters an enqueue
  sends, in the same transaction shape as the enqueue (no Python of offload's).
* SQLite only, the layers between: the statement in `backend.tx()`, and `SqlJobs._one`
  (the store's lone path: admission check, statement, id, wake-up).
* `enqueue`: `task.enqueue(n)`.
`--no-trigger` (SQLite) runs every row with offload's events insert trigger taken away: what
the event row costs (a measurement only: offload needs the trigger). PostgreSQL's insert
writes its event within the statement since schema 21 (benchmarks/enqueue_ab.py compares).
Columns: wall time, the producer's CPU (time.process_time), and per backend: SQLite's
traced statements (a trigger's program is traced too; WAL pages are benchmarks/wal.py's),
PostgreSQL's server CPU (the database's backends, from /proc: a local server only, in
clock ticks: 10 ms over a round of 1,000 calls is 10 us a call), transaction ids assigned
(write transactions) and WAL bytes (LSN distance).
CPU counts the kernel's part of each fsync; `--sync normal` (SQLite) / a server with fsync
off shows the CPU without it. Wall time moves with the machine's load; CPU and WAL less so.

    .venv/bin/python benchmarks/lone_budget.py --backend sqlite [--rounds 5] [--sync normal]
    .venv/bin/python benchmarks/lone_budget.py --backend postgres [--fsync]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import psycopg  # noqa: E402
from tests.pgserver import start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402

import offload  # noqa: E402
from offload.backends.params import JobInsertParams  # noqa: E402
from offload.backends.sql import jobs as sql_jobs  # noqa: E402
from offload.core.job import JobSpec, Payload  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1000, help="calls per row and round")
    parser.add_argument("--sync", choices=("full", "normal"), default="full", help="SQLite")
    parser.add_argument("--fsync", action="store_true", help="PostgreSQL: fsync on")
    parser.add_argument("--no-trigger", action="store_true", help="SQLite: no events trigger")
    args = parser.parse_args()
    if args.no_trigger and args.backend == "postgres":
        parser.error("--no-trigger: PostgreSQL has no events trigger since schema 21")
    with tempfile.TemporaryDirectory(prefix="lone-budget-") as scratch:
        if args.backend == "sqlite":
            rows = sqlite_rows(Path(scratch), args.sync, args.no_trigger)
        else:
            server = start_postgres(durable_commits=True)
            try:
                rows = postgres_rows(server.url, args.fsync)
                report(rows, args.rounds, args.calls)
            finally:
                server.stop()
            return 0
        report(rows, args.rounds, args.calls)
    return 0


Row = tuple[str, Callable[[int], Any], Callable[[], dict[str, float]]]


def report(rows: list[Row], rounds: int, calls: int) -> None:
    for _, call, _ in rows:  # warm up: statement caches, prepared statements, pages
        for n in range(200):
            call(n)
    seen: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in rows}
    for _ in range(rounds):
        for name, call, counters in rows:
            before = counters()
            wall, cpu = time.perf_counter(), time.process_time()
            for n in range(calls):
                call(n)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            after = counters()
            figures = {k: (after[k] - before[k]) / calls for k in after}
            figures.update(wall=wall / calls * 1e6, cpu=cpu / calls * 1e6)
            seen[name].append(figures)
    keys = ["wall", "cpu", *[k for k in seen[rows[0][0]][0] if k not in ("wall", "cpu")]]
    units = {
        "wall": "wall us",
        "cpu": "client CPU us",
        "server": "server CPU us",
        "statements": "traced statements (trigger programs too)",
    }
    print(f"load average {os.getloadavg()[0]:.2f}; {rounds} rounds of {calls:,} calls")
    print("| row | " + " | ".join(units.get(k, k) for k in keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, runs in seen.items():
        cells = [f"{statistics.median(r[k] for r in runs):,.1f}" for k in keys]
        print(f"| {name} | " + " | ".join(cells) + " |")


def captured(app: offload.App, task: offload.Task[..., Any]) -> dict[str, Any]:
    """The parameters `insert_one` gets for `task.enqueue(1)`, as offload builds them."""
    found: dict[str, Any] = {}
    store = sql_jobs.SqlJobs._store

    def spy(self: Any, cur: Any, spec: JobSpec, payloads: Any, **kw: Any) -> Any:
        found.update(sql_jobs._spec_params(spec), admitted=False, shed=False, defer=False)
        found.update(payloads[0]._asdict())
        return store(self, cur, spec, payloads, **kw)

    sql_jobs.SqlJobs._store = spy  # type: ignore[method-assign]
    try:
        task.enqueue(1)
    finally:
        sql_jobs.SqlJobs._store = store  # type: ignore[method-assign]
    assert set(Payload._fields) <= set(found)
    return found


def sqlite_rows(scratch: Path, sync: str, no_trigger: bool) -> list[Row]:
    raw = sqlite3.connect(scratch / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute(f"PRAGMA synchronous = {sync.upper()}")
    raw.execute("CREATE TABLE raw (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
    app = offload.App(f"sqlite:///{scratch / 'offload.db'}?synchronous={sync}")
    app.migrate()
    task = app.task(name="t")(_noop)
    values = captured(app, task)
    backend: Any = app.backend
    sql = backend.q["jobs"]["insert_one"]
    db: sqlite3.Connection = backend._conn()
    traced = {"n": 0}
    for conn in (raw, db):
        conn.set_trace_callback(lambda _: traced.__setitem__("n", traced["n"] + 1))

    def statements() -> dict[str, float]:
        return {"statements": traced["n"]}

    params = JobInsertParams(task._spec(), [Payload(values["args"], values["kwargs"])])

    def raw_one(n: int) -> None:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("INSERT INTO raw (v) VALUES (?)", (n,))
        raw.execute("COMMIT")

    def direct(n: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute(sql, values)
        db.execute("COMMIT")

    rows: list[Row] = [
        ("raw", raw_one, statements),
        ("insert_one", direct, statements),
        # Not offload's way: DESIGN asks BEGIN IMMEDIATE for every SQLite write.
        ("insert_one in autocommit", lambda n: db.execute(sql, values), statements),
        ("insert_one in backend.tx()", lambda n: _in_tx(backend, sql, values), statements),
        ("SqlJobs._one (the store's lone path)", lambda n: backend.jobs._one(params), statements),
        ("enqueue", task.enqueue, statements),
    ]
    if no_trigger:
        db.execute("DROP TRIGGER offload_jobs_events_insert")
    return rows


def postgres_rows(url: str, fsync: bool) -> list[Row]:
    admin = psycopg.connect(url, autocommit=True)
    admin.execute(f"ALTER SYSTEM SET fsync = {'on' if fsync else 'off'}")
    admin.execute("SELECT pg_reload_conf()")
    db_url = fresh_database(url, "lone_budget")
    raw = psycopg.connect(db_url, autocommit=True)
    raw.execute("CREATE TABLE raw (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v bigint)")
    app = offload.App(db_url)
    app.migrate()
    task = app.task(name="t")(_noop)
    values = captured(app, task)
    backend: Any = app.backend
    sql = backend.q["jobs"]["insert_one"]
    direct_conn = psycopg.connect(db_url, autocommit=True)
    dbname = raw.info.dbname

    def counters() -> dict[str, float]:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchall()
        server = 0.0
        for (pid,) in rows:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            server += (int(fields[11]) + int(fields[12])) / TICK * 1e6
        stats = admin.execute(
            "SELECT txid_snapshot_xmax(txid_current_snapshot()),"
            " pg_current_wal_lsn() - '0/0'::pg_lsn"
        ).fetchone()
        assert stats is not None
        return {"server": server, "xids": float(stats[0]), "WAL bytes": float(stats[1])}

    rows: list[Row] = [
        ("raw", lambda n: raw.execute("INSERT INTO raw (v) VALUES (%s)", (n,)), counters),
        ("insert_one", lambda n: direct_conn.execute(sql, values).fetchone(), counters),
        ("enqueue", task.enqueue, counters),
    ]
    return rows


def _in_tx(backend: Any, sql: str, values: dict[str, Any]) -> None:
    """The statement in the backend's own write transaction (its context, lock, cursor)."""
    with backend.tx() as cur:
        cur.execute(sql, values)


def _noop(n: int) -> None:
    """The enqueued task: never run here."""


if __name__ == "__main__":
    sys.exit(main())
