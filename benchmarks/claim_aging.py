"""Claim cost by virtual deadline (`ORDER BY sort_at, id`, issue 14) against the plain
priority order it replaced (`ORDER BY priority DESC, run_at, id`), at 10k and 1M queued.

For each backend and size: a scratch database with the offload schema, N due jobs of one
queue (priorities 0-9, run_at spread over the past hour, sort_at = run_at - priority x 60),
the new claim index `(queue, sort_at, id)` and the old one `(queue, priority DESC, run_at,
id)` both built (partial, on the queued states). Then, taking turns, the backend's own
claim statement and the same statement with the old ORDER BY each claim 10 jobs in a
transaction that is rolled back, so the queue keeps its size. Printed: median microseconds
per claim over the rounds, the ratio new / old, and each plan (EXPLAIN), to show both read
their index in order rather than sorting the queue.

    .venv/bin/python benchmarks/claim_aging.py                     # both backends, 10k and 1M
    .venv/bin/python benchmarks/claim_aging.py --backend sqlite --sizes 10000 --rounds 200
"""

from __future__ import annotations

import argparse
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

from tests.pgserver import start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402

import offload  # noqa: E402

NEW_ORDER = "ORDER BY sort_at, id"
OLD_ORDER = "ORDER BY priority DESC, run_at, id"
STATES = "('available', 'scheduled', 'retrying')"
OLD_INDEX = (
    "CREATE INDEX offload_jobs_claim_old ON offload_jobs (queue, priority DESC, run_at, id) "
    f"WHERE state IN {STATES}"
)
FILL = {
    "sqlite": """
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
        INSERT INTO offload_jobs (task, queue, priority, state, run_at, enqueued_at, sort_at)
        SELECT 't', 'bench', p, 'available', r, r, r - p * 60.0
        FROM (SELECT abs(random()) % 10 AS p,
                     (julianday('now') - 2440587.5) * 86400.0
                         - (abs(random()) % 3600000) / 1000.0 AS r
              FROM n) AS g""",
    "postgres": """
        INSERT INTO offload_jobs (task, queue, priority, state, run_at, enqueued_at, sort_at)
        SELECT 't', 'bench', p, 'available', r, r, r - make_interval(secs => p * 60.0)
        FROM (SELECT floor(random() * 10)::int AS p,
                     now() - random() * interval '1 hour' AS r
              FROM generate_series(1, {count})) AS g""",
}
PARAMS = {"worker": "bench", "queue": "bench", "limit": 10, "lease": 30.0, "now": None}


class Scratch:
    """A migrated scratch database of one backend with N queued jobs and both indexes."""

    def __init__(self, backend: str, url: str, count: int) -> None:
        self.backend = backend
        app = offload.App(url)
        app.migrate()
        self.new = str(app.backend.q["claims"]["claim"])  # type: ignore[attr-defined]
        app.close()
        assert NEW_ORDER in self.new, "the claim statement changed: update this benchmark"
        self.old = self.new.replace(NEW_ORDER, OLD_ORDER)
        if backend == "sqlite":
            self.db: Any = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        else:
            import psycopg

            self.db = psycopg.connect(url, autocommit=True)
        started = time.perf_counter()
        self.run(FILL[backend].format(count=count))
        self.run(OLD_INDEX)
        self.run("ANALYZE")
        print(f"  {count:,} jobs stored and indexed in {time.perf_counter() - started:.1f}s")

    def run(self, sql: str) -> list[Any]:
        cur = self.db.execute(sql)
        return list(cur.fetchall()) if cur.description else []

    def claim_us(self, sql: str) -> float:
        """Microseconds of one claim of 10 jobs, in a transaction rolled back afterwards."""
        if self.backend == "sqlite":
            self.db.execute("BEGIN IMMEDIATE")
            started = time.perf_counter()
            rows = self.db.execute(sql, PARAMS).fetchall()
            spent = time.perf_counter() - started
            self.db.execute("ROLLBACK")
        else:
            with self.db.transaction(force_rollback=True):
                started = time.perf_counter()
                rows = self.db.execute(sql.encode(), PARAMS).fetchall()
                spent = time.perf_counter() - started
        assert len(rows) == 10, rows
        return spent * 1e6

    def plan(self, sql: str) -> list[str]:
        if self.backend == "sqlite":
            rows = self.db.execute("EXPLAIN QUERY PLAN " + sql, PARAMS).fetchall()
            return [str(row[-1]) for row in rows]
        rows = self.db.execute(b"EXPLAIN " + sql.encode(), PARAMS).fetchall()
        return [str(row[0]).strip() for row in rows]

    def close(self) -> None:
        self.db.close()


def measure(scratch: Scratch, rounds: int) -> tuple[float, float]:
    """Median microseconds per claim, new order and old, taking turns."""
    new: list[float] = []
    old: list[float] = []
    for _ in range(10):  # warm caches and prepared statements
        scratch.claim_us(scratch.new)
        scratch.claim_us(scratch.old)
    for _ in range(rounds):
        new.append(scratch.claim_us(scratch.new))
        old.append(scratch.claim_us(scratch.old))
    return statistics.median(new), statistics.median(old)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    server = start_postgres() if "postgres" in backends else None
    results: list[tuple[str, int, float, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for backend in backends:
                for n, count in enumerate(sizes):
                    print(f"{backend}, {count:,} queued:", flush=True)
                    url: str
                    if backend == "sqlite":
                        url = f"sqlite:///{tmp}/claim_{count}.db"
                    else:
                        assert server is not None
                        url = fresh_database(server.url, f"claim_aging_{n}")
                    scratch = Scratch(backend, url, count)
                    try:
                        for label, sql in (("sort_at", scratch.new), ("priority", scratch.old)):
                            print(f"  plan, {label} order:")
                            for line in scratch.plan(sql):
                                print(f"    {line}")
                        new, old = measure(scratch, args.rounds)
                    finally:
                        scratch.close()
                    results.append((backend, count, new, old))
    finally:
        if server is not None:
            server.stop()
    show: Callable[[float], str] = lambda us: f"{us:,.0f}"  # noqa: E731
    print(f"\nmedian us per claim of 10 jobs ({args.rounds} rounds each, taking turns)")
    print(f"{'backend':<9} {'queued':>10} {'sort_at':>9} {'priority':>9} {'ratio':>6}")
    for backend, count, new, old in results:
        print(f"{backend:<9} {count:>10,} {show(new):>9} {show(old):>9} {new / old:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
