"""What an idle worker's claim of one job costs: `claims.take` of one due job, alone.

Enqueues one no-op job, claims it (limit 2, as an idle 2-slot worker asks), finishes it,
and repeats; prints, per claim, the median wall and CPU time in microseconds, statements
sent, and on PostgreSQL the plan of the claim statement (`EXPLAIN (ANALYZE, BUFFERS)`, the
index it uses). Figures that move little with load: CPU us and statements. (Until schema
21, `--without trigger|notify` measured PostgreSQL's update trigger, since dropped.)

    python benchmarks/claim_one.py [--backend sqlite|postgres] [--rounds 300] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]


def measure(url: str, rounds: int) -> None:
    """Claim one job `rounds` times on the database at `url`; print the medians."""
    import offload
    from offload.backends.params import ClaimParams, FinishParams, Outcome
    from offload.core.states import JobState

    statements = [0]
    traced = url.startswith("sqlite") and _count_statements(statements)
    app = offload.App(url)

    @app.task(name="noop")
    def noop() -> None:
        return None

    app.migrate()
    producer = offload.App(url)  # its own connection: its durable commits are not the claim's
    enqueue = producer.task(name="noop")(_noop).enqueue
    backend: Any = app.backend
    claims = backend.claims
    wall: list[float] = []
    cpu: list[float] = []
    sent: list[int] = []
    for i in range(rounds + 20):
        enqueue()
        statements[0] = 0
        w0, c0 = time.perf_counter(), time.process_time()
        took = claims.take(ClaimParams("bench-worker", "default", 2, 30.0, None))
        w1, c1 = time.perf_counter(), time.process_time()
        assert len(took.jobs) == 1, took
        if i >= 20:  # the first claims probe the queue's view and warm caches
            wall.append((w1 - w0) * 1e6)
            cpu.append((c1 - c0) * 1e6)
            sent.append(statements[0])
        job = took.jobs[0]
        claims.finish(
            FinishParams(
                "bench-worker",
                [Outcome(job.id, job.attempt, JobState.SUCCEEDED, result="null")],
            )
        )
    print(
        f"claim of 1 job: wall p50 {statistics.median(wall):.0f} us, "
        f"CPU p50 {statistics.median(cpu):.0f} us, statements {statistics.median(sent):g}"
        f"{'' if traced else ' (not counted)'}"
    )
    if url.startswith("postgres"):
        enqueue()
        explain(app)
    producer.close()
    app.close()


def _noop() -> None:
    """The producer's no-op task."""


def _count_statements(counter: list[int]) -> bool:
    """Count statements SQLite connections opened from now on execute (a trace callback)."""
    import sqlite3

    original = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        conn = original(*args, **kwargs)
        conn.set_trace_callback(lambda _: counter.__setitem__(0, counter[0] + 1))
        return conn

    sqlite3.connect = connect  # connections opened from now on
    return True


def explain(app: Any) -> None:
    """Print the plan of the claim statement at one due job (in a rolled-back transaction)."""
    from offload.backends.params import ClaimParams

    claims = app.backend.claims
    values = claims._values(ClaimParams("bench-worker", "default", 2, 30.0, None))
    for _ in range(6):  # the last, once the session has its plans
        with contextlib.suppress(_Rollback), claims.db.tx(relaxed=True) as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + claims.q["claim"], values)
            plan = [row[0] for row in cur.fetchall()]
            raise _Rollback
    print("\n".join(plan))


class _Rollback(Exception):
    """Ends the EXPLAIN's transaction without a commit."""


@contextlib.contextmanager
def postgres(pg_url: str | None) -> Iterator[str]:
    """A fresh database: on the server at `pg_url`, or on a throwaway one."""
    from tests.pgserver import start_postgres
    from tests.pgserver.databases import fresh_database

    server = None if pg_url else start_postgres()
    try:
        base = pg_url or (server.url if server else "")
        yield fresh_database(base, f"offload_claim_{os.getpid()}")
    finally:
        if server is not None:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--pg-url")
    args = parser.parse_args()
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            measure(f"sqlite:///{tmp}/claim.db", args.rounds)
    else:
        with postgres(args.pg_url) as url:
            measure(url, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
