"""Aggregation: draining tiny jobs one by one vs as batch calls, on each backend.

Each job stores one row in a local service: a SQLite file (WAL, synchronous=NORMAL) served
one request at a time, each request one transaction. The one-by-one task inserts its row
and commits (one round trip per job); the batch task (`@app.batch_task(max_size=100)`, one
group) inserts its items' rows with one executemany and one commit per call. Each round
queues `--jobs` jobs of each kind on a fresh database (not timed), then times a burst
worker (thread executor, `--concurrency` slots, in this process) from `run()` to its
return, and checks that the sink holds every row once. Prints each run, the medians, and
the median of the per-round ratios (batched rate / one-by-one rate).

    .venv/bin/python benchmarks/batch_drain.py [--backend both] [--rounds 3] [--jobs 20000]
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(ROOT))

import offload  # noqa: E402
from benchmarks._rounds import arguments, ratios, rounds, spread, targets  # noqa: E402
from benchmarks.throughput import Target  # noqa: E402
from offload.task import Call  # noqa: E402

MODES = ("one-by-one", "batched")


class Sink:
    """The local service: one table of rows in a SQLite file, served one request at a time
    (one connection behind a lock, as a service with one writer serves its clients: no
    busy-waiting between worker threads)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("CREATE TABLE rows (n INTEGER NOT NULL)")
        self.db.commit()

    def insert(self, numbers: list[int]) -> None:
        """One round trip: insert these rows and commit."""
        with self.lock:
            self.db.executemany("INSERT INTO rows (n) VALUES (?)", [(n,) for n in numbers])
            self.db.commit()

    def count(self) -> tuple[int, int]:
        with sqlite3.connect(self.path) as db:
            total, distinct = db.execute("SELECT count(*), count(DISTINCT n) FROM rows").fetchone()
        return int(total), int(distinct)


def drain(url: str, sink: Sink, mode: str, jobs: int, concurrency: int) -> float:
    """Queue `jobs` jobs of `mode` on `url`, drain them with a burst worker; seconds."""
    app = offload.App(url)
    app.migrate()

    # Only the task measured is registered: a worker serving a batch task also looks for
    # its groups at every claim.
    task: offload.Task[..., Any]
    if mode == "one-by-one":

        @app.task(name="store_one")
        def store_one(n: int) -> None:
            sink.insert([n])

        task = store_one
    else:

        @app.batch_task(name="store_many", max_size=100, max_wait=0.05)
        def store_many(items: list[offload.BatchItem]) -> list[None]:
            sink.insert([item.args[0] for item in items])
            return [None] * len(items)

        task = store_many
    for start in range(0, jobs, 1000):
        task.enqueue_many(Call((n,)) for n in range(start, min(start + 1000, jobs)))
    worker = app.worker(
        executor="thread", concurrency=concurrency, burst=True, install_signals=False
    )
    started = time.perf_counter()
    worker.run()
    seconds = time.perf_counter() - started
    app.close()
    stored = sink.count()
    sink.db.close()
    if stored != (jobs, jobs):
        raise SystemExit(f"{mode}: the sink holds {stored} (rows, distinct), not {jobs}")
    return seconds


def run(target: Target, count: int, jobs: int, concurrency: int) -> None:
    print(f"{target.title}: {jobs:,} jobs per run, {concurrency} thread slots")

    def rate(url: str, mode: str) -> float:
        with tempfile.TemporaryDirectory() as scratch:
            sink = Sink(Path(scratch) / "sink.db")
            return jobs / drain(url, sink, mode, jobs, concurrency)

    rates = rounds(target, count, MODES, rate)
    for mode in MODES:
        shown = ", ".join(f"{r:,.0f}" for r in rates[mode])
        print(f"  {mode:10} median {statistics.median(rates[mode]):9,.0f} jobs/s  ({shown})")
    per_round = ratios(rates["batched"], rates["one-by-one"])
    print(f"  ratio batched / one-by-one: {spread(per_round, digits=1)}")


def main() -> int:
    parser = arguments(__doc__ or "", rounds=3, jobs=20_000)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    with targets(args.backend) as chosen:
        for target in chosen:
            run(target, args.rounds, args.jobs, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
