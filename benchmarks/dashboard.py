"""What the dashboard's pages cost with many jobs stored: each `App` call they make, timed
at p50 and p95, on a SQLite file and on a PostgreSQL server started for the run, and the
pages themselves through the ASGI app when the dashboard (`offload.dashboard`) is there.

The fill is bulk SQL (enqueue would take an hour for a million jobs): N jobs enqueued over
the last 7 days in id order, over 8 queues (half of them in q0) and 20 tasks, in the states
of a busy system (70% succeeded, 10% available, 5% scheduled, 2% running, 5% dead, 3%
retrying, 3% cancelled, 2% shed), the failed ones with an error of 3 common types and one
rare type (0.1% of jobs); args [i % 1000, "user-<i % 5000>"], kwargs {"user": i % 5000,
"region": "r<i % 7>"}. Their events are rolled up into the charts' buckets (timed: the
roll-up's rate), and 8 days of minute buckets of every queue are stored as the scheduler
would have left them. A few workers, schedules, workflows and topics complete the pages.

    .venv/bin/python benchmarks/dashboard.py [--jobs 1000000] [--rounds 20]
        [--backend sqlite|postgres|both] [--pg-url URL]

Each call is run once to warm up, then `--rounds` times; the table gives p50 and p95 in ms.
"""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import psycopg  # noqa: E402
from tests.conformance.helpers import sqlite_path  # noqa: E402
from tests.pgserver import start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402

import offload  # noqa: E402
from offload.workflow import chain  # noqa: E402

#: Jobs per fill statement: big enough to be quick, small enough to show progress.
CHUNK = 100_000
#: The page budget at p95 (issue 19).
BUDGET_MS = 300.0
RARE = "myapp.errors.Rare"

_STATE = """CASE
    WHEN g % 100 < 70 THEN 'succeeded' WHEN g % 100 < 80 THEN 'available'
    WHEN g % 100 < 85 THEN 'scheduled' WHEN g % 100 < 87 THEN 'running'
    WHEN g % 100 < 92 THEN 'dead' WHEN g % 100 < 95 THEN 'retrying'
    WHEN g % 100 < 98 THEN 'cancelled' ELSE 'shed' END"""
_ATTEMPT = """CASE WHEN g % 100 < 70 OR g % 100 BETWEEN 85 AND 86 THEN 1
    WHEN g % 100 BETWEEN 87 AND 91 THEN 3 WHEN g % 100 BETWEEN 92 AND 94 THEN 1 ELSE 0 END"""
_ERROR_TYPE = f"""CASE WHEN g % 1000 = 987 THEN '{RARE}' WHEN g % 3 = 0 THEN 'ValueError'
    WHEN g % 3 = 1 THEN 'KeyError' ELSE 'myapp.errors.Timeout' END"""
_FAILED = "g % 100 BETWEEN 87 AND 94"
_QUEUE = "'q' || CASE WHEN g % 10 < 5 THEN 0 ELSE g % 8 END"

PG_FILL = f"""
INSERT INTO offload_jobs (task, queue, args, kwargs, priority, state, attempt,
    max_attempts, run_at, enqueued_at, sort_at, started_at, finished_at, worker,
    lease_until, errors)
SELECT 't' || (g % 20), {_QUEUE},
    json_build_array(g % 1000, 'user-' || (g % 5000)),
    json_build_object('user', g % 5000, 'region', 'r' || (g % 7)), 0, {_STATE}, {_ATTEMPT}, 3,
    e + CASE WHEN g % 100 BETWEEN 80 AND 84 THEN interval '30 days' ELSE interval '0' END,
    e, e, CASE WHEN {_ATTEMPT} > 0 THEN e + interval '1 second' END,
    CASE WHEN g % 100 < 70 OR g % 100 BETWEEN 87 AND 91 OR g % 100 BETWEEN 95 AND 97
         THEN e + interval '2 seconds' END,
    CASE WHEN g % 100 BETWEEN 85 AND 86 THEN 'w1' END,
    CASE WHEN g % 100 BETWEEN 85 AND 86 THEN now() + interval '1 day' END,
    CASE WHEN {_FAILED} THEN jsonb_build_array(jsonb_build_object('type', {_ERROR_TYPE},
        'message', 'boom', 'traceback', NULL, 'at', 0, 'attempt', 1)) ELSE '[]' END
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g,
    LATERAL (SELECT now() - make_interval(secs => (%(n)s - g) * 604800.0 / %(n)s)) AS t(e)
"""

SQLITE_FILL = f"""
INSERT INTO offload_jobs (task, queue, args, kwargs, priority, state, attempt,
    max_attempts, run_at, enqueued_at, sort_at, started_at, finished_at, worker,
    lease_until, errors)
WITH RECURSIVE s(g) AS (SELECT :lo UNION ALL SELECT g + 1 FROM s WHERE g < :hi),
    t(g, e) AS (SELECT g, {{now}} - (:n - g) * 604800.0 / :n FROM s)
SELECT 't' || (g % 20), {_QUEUE},
    json_array(g % 1000, 'user-' || (g % 5000)),
    json_object('user', g % 5000, 'region', 'r' || (g % 7)), 0, {_STATE}, {_ATTEMPT}, 3,
    e + CASE WHEN g % 100 BETWEEN 80 AND 84 THEN 30 * 86400.0 ELSE 0 END, e, e,
    CASE WHEN {_ATTEMPT} > 0 THEN e + 1 END,
    CASE WHEN g % 100 < 70 OR g % 100 BETWEEN 87 AND 91 OR g % 100 BETWEEN 95 AND 97
         THEN e + 2 END,
    CASE WHEN g % 100 BETWEEN 85 AND 86 THEN 'w1' END,
    CASE WHEN g % 100 BETWEEN 85 AND 86 THEN {{now}} + 86400 END,
    CASE WHEN {_FAILED} THEN json_array(json_object('type', {_ERROR_TYPE},
        'message', 'boom', 'traceback', NULL, 'at', 0, 'attempt', 1)) ELSE '[]' END
FROM t
""".replace("{now}", "((julianday('now') - 2440587.5) * 86400.0)")

#: Eight days of minute buckets for 8 queues, as the scheduler's roll-ups leave them.
_BINS = '{"8": 20, "10": 50, "12": 25, "14": 5}'
PG_STATS = f"""
INSERT INTO offload_stats (bucket, queue, enqueued, started, succeeded, failed, dead,
    latency_n, latency_sum, latency_max, latency_bins)
SELECT date_trunc('minute', now()) - make_interval(mins => m), 'q' || q, 100, 100, 95, 5,
    1, 100, 12.5, 2.5, '{_BINS}'
FROM generate_series(1, 11520) AS m, generate_series(0, 7) AS q
ON CONFLICT DO NOTHING
"""
SQLITE_STATS = f"""
INSERT OR IGNORE INTO offload_stats (bucket, queue, enqueued, started, succeeded, failed,
    dead, latency_n, latency_sum, latency_max, latency_bins)
WITH RECURSIVE m(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM m WHERE i < 11520),
    q(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM q WHERE j < 7)
SELECT (CAST(((julianday('now') - 2440587.5) * 86400.0) / 60 AS INTEGER) - i) * 60.0,
    'q' || j, 100, 100, 95, 5, 1, 100, 12.5, 2.5, '{_BINS}'
FROM m, q
"""


def execute(url: str, sql: str, values: dict[str, Any] | None = None) -> None:
    """One statement, committed, on a connection of its own (PostgreSQL: autocommit)."""
    if url.startswith("sqlite:"):
        db = sqlite3.connect(sqlite_path(url))
        try:
            with db:
                db.execute(sql, values or {})
        finally:
            db.close()
        return
    with psycopg.connect(url, autocommit=True) as conn:
        if values:  # psycopg's placeholders: a literal % is doubled
            sql = sql.replace(" % ", " %% ")
        conn.execute(sql.encode(), values)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fill(url: str, jobs: int) -> tuple[offload.App, dict[str, Any]]:
    """The database the docstring describes; returns the App and facts for the calls."""
    app = offload.App(url)
    app.migrate()

    @app.task(name="t1")
    def t1(*args: Any, **kwargs: Any) -> None: ...

    @app.periodic("*/5 * * * *", name="every-5")
    def tick() -> None: ...

    sqlite = url.startswith("sqlite:")
    started = time.perf_counter()
    for lo in range(1, jobs + 1, CHUNK):
        hi = min(lo + CHUNK - 1, jobs)
        values = {"lo": lo, "hi": hi, "n": jobs}
        execute(url, SQLITE_FILL if sqlite else PG_FILL, values)
        log(f"  {hi:,} jobs")
    filled = time.perf_counter() - started
    if not sqlite:  # as autovacuum would; offload runs no ANALYZE on SQLite, nor does this
        execute(url, "VACUUM ANALYZE offload_jobs")
        execute(url, "VACUUM ANALYZE offload_events")
    started = time.perf_counter()
    rolled = app.backend.stats.roll()
    roll_seconds = time.perf_counter() - started
    execute(url, SQLITE_STATS if sqlite else PG_STATS)
    # What the other pages list: workers, schedules, workflows, topics.
    now = app.backend.now()
    from offload.core.records import WorkerInfo

    for n in range(4):
        info = WorkerInfo(f"w{n}", "host", 100 + n, ["q0", "q1"], 8, now, now)
        app.backend.workers.register(info)
    app.backend.schedules.sync(list(app.schedules.values()))
    for n in range(20):
        chain(app.signature("t1", n), app.signature("t1", n + 1)).enqueue()
    for n in range(3):
        app.publish(f"topic{n}", {"n": n})
    newest = app.jobs(limit=1)[0].id
    facts = {
        "fill_s": filled,
        "rolled": rolled,
        "roll_s": roll_seconds,
        "newest": newest,
        "middle": newest // 2,
    }
    return app, facts


def timed(call: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """p50 and p95 of `call` in ms, after one warm-up."""
    call()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
    return statistics.median(times), p95


def calls(app: offload.App, facts: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """The App calls the dashboard's pages make, by a short name."""
    hour, day = timedelta(hours=1), timedelta(days=1)
    return {
        "jobs newest 50": app.jobs,
        "jobs page deep (before_id mid)": lambda: app.jobs(before_id=facts["middle"]),
        "jobs state=dead": lambda: app.jobs(state="dead"),
        "jobs state=running": lambda: app.jobs(state="running"),
        "jobs state=scheduled": lambda: app.jobs(state="scheduled"),
        "jobs queue=q3": lambda: app.jobs(queue="q3"),
        "jobs task=t7": lambda: app.jobs(task="t7"),
        "jobs error_type=ValueError": lambda: app.jobs(error_type="ValueError"),
        "jobs error_type=rare (0.1%)": lambda: app.jobs(error_type=RARE),
        "jobs after=1h ago": lambda: app.jobs(after=hour),
        "jobs before=3d ago": lambda: app.jobs(before=timedelta(days=3)),
        "jobs after=6d ago, before=5d": lambda: app.jobs(
            after=timedelta(days=6), before=timedelta(days=5)
        ),
        "jobs state=dead queue=q3": lambda: app.jobs(state="dead", queue="q3"),
        "jobs args_contains user=4242": lambda: app.jobs(args_contains={"user": 4242}),
        "jobs args_contains none match": lambda: app.jobs(args_contains={"user": 987654}),
        "count all": app.count_jobs,
        "count state=dead": lambda: app.count_jobs(state="dead"),
        "count queue=q3": lambda: app.count_jobs(queue="q3"),
        "count error_type=rare": lambda: app.count_jobs(error_type=RARE),
        "count state=dead queue=q3": lambda: app.count_jobs(state="dead", queue="q3"),
        "queue_counts": app.queue_counts,
        "queue_statuses": app.queue_statuses,
        "stats hour": lambda: app.stats(hour),
        "stats hour queue=q3": lambda: app.stats(hour, queue="q3"),
        "stats day (5 min)": lambda: app.stats(day, bucket_seconds=300),
        "job detail": lambda: app.job(facts["newest"]).job(),
        "worker_statuses": app.worker_statuses,
        "schedule_statuses": app.schedule_statuses,
        "workflow_statuses": app.workflows,
        "topics": app.topics,
    }


def pages(app: offload.App, facts: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """The dashboard's pages through the ASGI app, if this tree has the dashboard."""
    try:
        import offload.dashboard
    except ImportError:
        return {}
    from starlette.testclient import TestClient

    client = TestClient(offload.asgi(app, auth=False))

    def get(path: str) -> Callable[[], Any]:
        def fetch() -> Any:
            answer = client.get(path)
            if answer.status_code != 200:
                raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
            return answer

        return fetch

    paths = [
        "/",
        "/jobs",
        "/jobs?state=dead",
        "/jobs?queue=q3",
        "/jobs?task=t7",
        f"/jobs?error_type={RARE}",
        '/jobs?args={"user":4242}',
        f"/jobs/{facts['newest']}",
        "/dead",
        "/workflows",
        "/cron",
        "/workers",
        "/topics",
        "/charts.json?window=hour",
        "/charts.json?window=day",
    ]
    return {f"GET {path}": get(path) for path in paths}


def run(url: str, name: str, jobs: int, rounds: int) -> list[tuple[str, str, float, float]]:
    log(f"filling {name} with {jobs:,} jobs")
    app, facts = fill(url, jobs)
    log(
        f"{name}: filled in {facts['fill_s']:.0f} s; rolled {facts['rolled']:,} events up in "
        f"{facts['roll_s']:.1f} s ({facts['rolled'] / max(facts['roll_s'], 1e-9):,.0f}/s)"
    )
    rows = []
    for label, call in {**calls(app, facts), **pages(app, facts)}.items():
        p50, p95 = timed(call, rounds)
        rows.append((name, label, p50, p95))
        log(f"  {label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    app.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()
    rows: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        if args.backend in ("sqlite", "both"):
            rows += run(f"sqlite:///{tmp}/dashboard.db", "sqlite", args.jobs, args.rounds)
        if args.backend in ("postgres", "both"):
            server = None if args.pg_url else start_postgres()
            try:
                base = args.pg_url or (server.url if server else "")
                url = fresh_database(base, "offload_dashboard_bench")
                rows += run(url, "postgres", args.jobs, args.rounds)
            finally:
                if server is not None:
                    server.stop()
    print(f"\n{args.jobs:,} jobs, {args.rounds} rounds; ms; * over the {BUDGET_MS:.0f} ms budget")
    names = sorted({r[0] for r in rows}, key=["sqlite", "postgres"].index)
    labels = list(dict.fromkeys(r[1] for r in rows))
    got = {(r[0], r[1]): (r[2], r[3]) for r in rows}
    header = f"{'call':<38}" + "".join(f"{n + ' p50':>15}{n + ' p95':>15}" for n in names)
    print(header)
    for label in labels:
        line = f"{label:<38}"
        for n in names:
            p50, p95 = got.get((n, label), (math.nan, math.nan))
            mark = "*" if p95 > BUDGET_MS else " "
            line += f"{p50:>15.1f}{p95:>14.1f}{mark}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
