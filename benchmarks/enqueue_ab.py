"""Interleaved A/B of single-job PostgreSQL enqueues between two source trees.

Each round enqueues 3,000 jobs one per call from each tree in turn (a fresh process and
database each time, on a throwaway server that acknowledges a commit once it is written), and
then counts the Python calls of 500 more under cProfile. Call counts do not move with the
machine's load; the throughput medians do, which is why the trees take turns.

    .venv/bin/python benchmarks/enqueue_ab.py /path/to/base-tree /path/to/this-tree [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.pgserver import start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402

CHILD = r"""
import cProfile, pstats, sys, time
import offload
app = offload.App(sys.argv[1])
app.migrate()
@app.task(name="t")
def t(x: int) -> None: ...
for i in range(200):
    t.enqueue(i)
n = int(sys.argv[2])
started = time.perf_counter()
for i in range(n):
    t.enqueue(i)
rate = n / (time.perf_counter() - started)
profile = cProfile.Profile()
profile.enable()
for i in range(500):
    t.enqueue(i)
profile.disable()
print(f"{rate:.0f} {pstats.Stats(profile).total_calls / 500:.1f}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, help="two checkouts, each with a src/offload")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=3000)
    args = parser.parse_args()
    server = start_postgres(durable_commits=True)
    rates: dict[str, list[float]] = {tree: [] for tree in args.trees}
    calls: dict[str, str] = {}
    try:
        for n in range(args.rounds):
            for i, tree in enumerate(args.trees):
                url = fresh_database(server.url, f"ab_{n}_{i}")
                env = dict(os.environ, PYTHONPATH=str(Path(tree) / "src"))
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, url, str(args.jobs)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rate, per_call = out.stdout.split()
                rates[tree].append(float(rate))
                calls[tree] = per_call
    finally:
        server.stop()
    for tree in args.trees:
        runs = ", ".join(f"{r:,.0f}" for r in rates[tree])
        print(
            f"{tree}: median {statistics.median(rates[tree]):,.0f} jobs/s ({runs}); "
            f"{calls[tree]} Python calls per enqueue"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
