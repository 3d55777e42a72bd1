"""What `offload queues` costs: `App.queue_statuses()` (counts, policies, drain rates, oldest
wait, jobs held back) against `App.queue_counts()` (the counts alone, all the listing read
before flow control), at a few table sizes, on both backends.

Each size gets a fresh database holding N jobs over 4 queues: half finished, 2% running,
the rest queued (a tenth of them scheduled later); one queue has a concurrency limit and
one task a keyed limit, so the held-back count has work to do. Each figure is the median of
`--rounds` calls (after one warm-up), in this process; the ratio is statuses / counts.

    .venv/bin/python benchmarks/queue_status.py [--sizes 10000,200000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.conformance.helpers import RawDB  # noqa: E402
from tests.pgserver import start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402

import offload  # noqa: E402
from offload.core.flow import TaskLimits  # noqa: E402

QUEUES = ("mail", "feed", "reports", "default")


def fill(url: str, size: int) -> offload.App:
    """A migrated database of `size` jobs in the states the docstring describes."""
    app = offload.App(url)
    app.migrate()

    @app.task(name="send")
    def send(to: str) -> None: ...

    app.queue("mail", concurrency=2)
    app.backend.queues.declare({}, {"send": TaskLimits(concurrency=1, keyed=True)})
    batch = 5_000
    for start in range(0, size, batch):
        count = min(batch, size - start)
        queue = QUEUES[(start // batch) % len(QUEUES)]
        send.options(queue=queue).enqueue_many([(f"k{i % 50}",) for i in range(count)])
    raw = RawDB(url)
    mod = "%" if raw.sqlite else "%%"  # psycopg takes a literal % doubled
    raw.execute(f"UPDATE offload_jobs SET limit_key = 'k' || (id {mod} 50)")
    raw.execute(f"UPDATE offload_jobs SET state = 'succeeded' WHERE id {mod} 2 = 0")
    raw.execute(f"UPDATE offload_jobs SET state = 'running' WHERE id {mod} 50 = 1")
    later = "run_at + 3600" if raw.sqlite else "run_at + interval '1 hour'"
    raw.execute(
        f"UPDATE offload_jobs SET state = 'scheduled', run_at = {later} WHERE id {mod} 10 = 3"
    )
    if not raw.sqlite:
        raw.execute("ANALYZE offload_jobs")
    return app


def median_ms(call: Callable[[], Any], rounds: int) -> float:
    call()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,200000")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    server = start_postgres()
    print(f"{'backend':<9} {'jobs':>9} {'counts ms':>10} {'statuses ms':>12} {'ratio':>6}")
    try:
        for backend in ("sqlite", "postgres"):
            for n, size in enumerate(sizes):
                with tempfile.TemporaryDirectory() as tmp:
                    if backend == "sqlite":
                        url = f"sqlite:///{tmp}/jobs.db"
                    else:
                        url = fresh_database(server.url, f"offload_qs_{n}")
                    print(f"filling {backend} with {size} jobs", file=sys.stderr)
                    app = fill(url, size)
                    counts = median_ms(app.queue_counts, args.rounds)
                    statuses = median_ms(app.queue_statuses, args.rounds)
                    app.close()
                print(
                    f"{backend:<9} {size:>9,} {counts:>10.1f} {statuses:>12.1f} "
                    f"{statuses / counts:>6.2f}"
                )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
