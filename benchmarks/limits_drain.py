"""What limits cost when they do not bind: drain rate with no policy vs with a task limit.

Each round drains `--jobs` no-op jobs twice on fresh databases, taking turns: the plain
no-op task, then `limited_noop` (concurrency 1,000,000 and 1,000,000/s: every claim of its
jobs is the limited claim, counting running rows and logging each start, but nothing is
held back). Same worker as throughput.py (`python -m benchmarks.runner drain`, 2 slots).
Prints each run, the medians and the median of the per-round ratios (limited / none).

    .venv/bin/python benchmarks/limits_drain.py [--backend both] [--rounds 3] [--jobs 20000]
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(ROOT))

from benchmarks._rounds import arguments, ratios, rounds, spread, targets  # noqa: E402
from benchmarks.throughput import Target, bench_drain  # noqa: E402

VARIANTS = ("noop", "limited")


def run(target: Target, count: int, jobs: int, executor: str, timeout: float) -> None:
    def drain(url: str, task: str) -> dict[str, Any]:
        """One drain: jobs/s and the worker's loop turns."""
        result = bench_drain(url, jobs, executor, timeout, task=task)
        return {"rate": jobs / result["seconds"], "turns": result["turns"]}

    runs = rounds(target, count, VARIANTS, drain)
    print(f"{target.title}, {executor} executor x2, {jobs:,} jobs per drain")
    for variant in VARIANTS:
        rates = [r["rate"] for r in runs[variant]]
        turns = [r["turns"] for r in runs[variant]]
        shown = ", ".join(f"{x:,.0f}" for x in rates)
        print(
            f"  {'no policy' if variant == 'noop' else 'task limits':12} median "
            f"{statistics.median(rates):8,.0f} jobs/s  ({shown}); loop turns "
            f"{statistics.median(turns):,.0f}"
        )
    limited = ratios([r["rate"] for r in runs["limited"]], [r["rate"] for r in runs["noop"]])
    print(f"  ratio limited / none: {spread(limited, digits=2)}")


def main() -> int:
    parser = arguments(__doc__ or "", rounds=3, jobs=20_000)
    parser.add_argument("--executors", default="thread,process")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    with targets(args.backend) as chosen:
        for target in chosen:
            for executor in args.executors.split(","):
                run(target, args.rounds, args.jobs, executor, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
