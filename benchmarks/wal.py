"""WAL written per job operation, by table and index, on both backends: what the hot path's
writes cost the log, deterministically (no timing, so a busy machine does not move them).

SQLite: the frames (pages) appended to the -wal file, read from the frame headers and
attributed to their b-tree with the `dbstat` table; a reader holding an old snapshot keeps
the checkpointer from restarting the log during a measure. PostgreSQL: the bytes of the WAL
records between two LSNs, read with `pg_walinspect` and attributed to the relation of each
record's first block (commit records and the like under "(commit, other)"). The throwaway
server runs with full_page_writes=off, so no full-page images are counted: a production
server adds one per page first touched after each checkpoint.

Operations, each through the calls offload itself makes: `enqueue()` one job per call,
`enqueue_many()` 1,000 per call, and a worker's claim (`claims.take`) plus its outcome
(`claims.finish`), one job at a time and 50 at a time, and 50 jobs claimed at once whose
leases are then renewed 4 times (`claims.heartbeat`). Figures are per job.

    .venv/bin/python benchmarks/wal.py [--backend sqlite|postgres|both] [--jobs 200]
    .venv/bin/python benchmarks/wal.py --backlog 1000000    # the same with 1M jobs queued

`--backlog N` queues N jobs first (`enqueue_many`, untimed), so every operation runs on a
table and indexes that deep: what the scale workload of the peer rig compares.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sqlite3
import struct
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import psycopg  # noqa: E402
from tests.pgserver import start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402

import offload  # noqa: E402
from offload.backends.params import (  # noqa: E402
    ClaimParams,
    FinishParams,
    HeartbeatParams,
    Lease,
    Outcome,
)
from offload.core.states import JobState  # noqa: E402

WORKER = "wal-bench"
BATCH = 1_000
WIDE = 50  # jobs per claim in the batched claim+finish


@dataclass
class Measure:
    """One operation's WAL: units (frames or bytes) per relation, over `jobs` jobs."""

    name: str
    jobs: int
    units: Counter[str]


class Log:
    """Where a backend's WAL is read: `window` runs a function and returns what it wrote."""

    unit = ""

    def window(self, run: Callable[[], None]) -> Counter[str]:
        """Run `run` and return the log it wrote, in this log's unit, by relation."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the log holds."""


class SQLiteLog(Log):
    """Frames appended to the -wal file, by b-tree (`dbstat`); see the module docstring."""

    unit = "pages"

    def __init__(self, path: str) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.page = self.db.execute("PRAGMA page_size").fetchone()[0]

    def window(self, run: Callable[[], None]) -> Counter[str]:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        start = Path(self.path + "-wal").stat().st_size
        self.db.execute("BEGIN")
        self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # holds the snapshot
        try:
            run()
            with open(self.path + "-wal", "rb") as f:
                f.seek(max(start, 32))
                data = f.read()
        finally:
            self.db.execute("COMMIT")
        owners = dict(self.db.execute("SELECT pageno, name FROM dbstat").fetchall())
        counts: Counter[str] = Counter()
        step = 24 + self.page
        for at in range(0, len(data) - step + 1, step):
            (pageno,) = struct.unpack(">I", data[at : at + 4])
            counts[owners.get(pageno, "(free list, other)")] += 1
        return counts

    def close(self) -> None:
        self.db.close()


_BLOCK = re.compile(r"rel (\d+)/(\d+)/(\d+)")


class PostgresLog(Log):
    """Bytes of WAL records by relation (`pg_walinspect`); see the module docstring."""

    unit = "bytes"

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        self.conn.execute("SET synchronous_commit = on")
        self.conn.execute("CREATE TABLE IF NOT EXISTS wal_bench_flush (n int)")
        row = self.conn.execute(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        assert row is not None
        self.dboid = str(row[0])

    def _lsn(self) -> str:
        """Where the next WAL record will go."""
        row = self.conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        return str(row[0])

    def window(self, run: Callable[[], None]) -> Counter[str]:
        start = self._lsn()
        run()
        end = self._lsn()
        # A synchronous commit of a write flushes the WAL past `end` (walinspect reads no
        # further than the flushed position).
        self.conn.execute("INSERT INTO wal_bench_flush VALUES (1)")
        names = {
            str(node): name
            for node, name in self.conn.execute(
                "SELECT pg_relation_filenode(oid), relname FROM pg_class"
                " WHERE pg_relation_filenode(oid) IS NOT NULL"
            ).fetchall()
        }
        counts: Counter[str] = Counter()
        for rmgr, length, refs in self.conn.execute(
            "SELECT resource_manager, record_length, block_ref"
            " FROM pg_get_wal_records_info(%s::pg_lsn, %s::pg_lsn)",
            (start, end),
        ).fetchall():
            found = _BLOCK.search(refs or "")
            if found is None:
                counts[f"({rmgr.lower()}, no block)"] += length
            elif found.group(2) != self.dboid:
                counts["(other database)"] += length
            else:
                counts[names.get(found.group(3), "(unknown relation)")] += length
        return counts

    def close(self) -> None:
        self.conn.close()


def measure(url: str, log_for: Callable[[], Log], jobs: int, backlog: int = 0) -> list[Measure]:
    """Every operation of the module docstring on a fresh, migrated database at `url`, with
    `backlog` jobs queued first."""
    app = offload.App(url)
    app.migrate()

    @app.task(name="noop")
    def noop() -> None: ...

    for start in range(0, backlog, BATCH):
        noop.enqueue_many([()] * min(BATCH, backlog - start))

    backend = app.backend
    noop.enqueue()  # first statements prepared, first pages allocated outside the measure
    log = log_for()
    results: list[Measure] = []

    def enqueue_one() -> None:
        for _ in range(jobs):
            noop.enqueue()

    def enqueue_many() -> None:
        for _ in range(3):
            noop.enqueue_many([()] * BATCH)

    results.append(Measure("enqueue 1/call", jobs, log.window(enqueue_one)))
    results.append(Measure(f"enqueue_many {BATCH:,}", 3 * BATCH, log.window(enqueue_many)))

    def claim_finish(size: int, total: int) -> Callable[[], None]:
        """Claim `size` jobs at a time and record their success, until `total` are done."""

        def run() -> None:
            done = 0
            while done < total:
                took = backend.claims.take(ClaimParams(WORKER, "default", size, 60.0))
                outcomes = [
                    Outcome(job.id, job.attempt, JobState.SUCCEEDED, result="null")
                    for job in took.jobs
                ]
                assert outcomes, "ran out of jobs to claim"
                backend.claims.finish(FinishParams(WORKER, outcomes))
                done += len(outcomes)

        return run

    backend.claims.take(ClaimParams(WORKER, "default", 1, 60.0))  # prepared, view cached
    results.append(Measure("claim+finish 1", jobs, log.window(claim_finish(1, jobs))))
    wide = jobs // WIDE * WIDE
    results.append(Measure(f"claim+finish {WIDE}", wide, log.window(claim_finish(WIDE, wide))))

    def heartbeats() -> None:
        """Claim WIDE jobs, then renew their leases 4 times, as a worker's heartbeat does."""
        took = backend.claims.take(ClaimParams(WORKER, "default", WIDE, 60.0))
        leases = [Lease(job.id, job.attempt) for job in took.jobs]
        assert len(leases) == WIDE, "ran out of jobs to claim"
        for _ in range(4):
            backend.claims.heartbeat(HeartbeatParams(WORKER, leases, 60.0))

    noop.enqueue_many([()] * WIDE)
    results.append(Measure(f"claim {WIDE} + 4 beats", WIDE, log.window(heartbeats)))
    log.close()
    app.close()
    return results


def table(title: str, unit: str, results: list[Measure]) -> None:
    """Per-job figures, one row per relation, a column per operation."""
    names = sorted({n for r in results for n in r.units}, key=lambda n: (n.startswith("("), n))
    width = max(len(n) for n in [*names, "relation"]) + 2
    print(f"\n{title}: WAL {unit} per job")
    print(f"{'relation':<{width}}" + "".join(f"{r.name:>20}" for r in results))
    for name in names:
        cells = "".join(f"{r.units.get(name, 0) / r.jobs:>20.2f}" for r in results)
        print(f"{name:<{width}}{cells}")
    totals = "".join(f"{sum(r.units.values()) / r.jobs:>20.2f}" for r in results)
    print(f"{'total':<{width}}{totals}")


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """A fresh database on a throwaway server, stopped afterwards."""
    server = start_postgres()
    try:
        yield fresh_database(server.url, "offload_wal")
    finally:
        server.stop()


def main() -> int:
    """Measure the backends asked for and print a table for each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per single-job operation")
    parser.add_argument("--backlog", type=int, default=0, help="jobs queued before measuring")
    args = parser.parse_args()
    if args.jobs < WIDE:
        parser.error(f"--jobs must be at least {WIDE}")
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/wal.db"
            results = measure(f"sqlite:///{path}", lambda: SQLiteLog(path), args.jobs, args.backlog)
            page = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
        queued = f", {args.backlog:,} jobs queued first" if args.backlog else ""
        title = f"SQLite {sqlite3.sqlite_version} (page {page} B + 24 B frame header{queued})"
        table(title, "pages", results)
    if args.backend in ("postgres", "both"):
        with postgres_url() as url:
            results = measure(url, lambda: PostgresLog(url), args.jobs, args.backlog)
            version = psycopg.connect(url).execute("SHOW server_version").fetchone()
        shown = version[0] if version else "?"
        queued = f"; {args.backlog:,} jobs queued first" if args.backlog else ""
        title = f"PostgreSQL {shown} (full_page_writes=off: no full-page images{queued})"
        table(title, "bytes", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
