"""What limits cost when they do not bind: drain rate with no policy vs with a task limit.

Each round drains `--jobs` no-op jobs twice on fresh databases, taking turns: the plain
no-op task, then `limited_noop` (concurrency 1,000,000 and 1,000,000/s: every claim of its
jobs is the limited claim, counting running rows and logging each start, but nothing is
held back). Same worker as throughput.py (`python -m benchmarks.runner drain`, 2 slots).
Prints each run, the medians and the median of the per-round ratios (limited / none).

    .venv/bin/python benchmarks/limits_drain.py [--backend both] [--rounds 3] [--jobs 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.procinfo import load_average  # noqa: E402
from benchmarks.throughput import (  # noqa: E402
    PostgresTarget,
    SqliteTarget,
    Target,
    bench_drain,
    log,
)

VARIANTS = ("noop", "limited")


def rate(target: Target, jobs: int, executor: str, task: str, timeout: float) -> dict[str, Any]:
    """One drain on a fresh database: jobs/s, claims and loop turns."""
    with target.database() as url:
        result = bench_drain(url, jobs, executor, timeout, task=task)
    return {"rate": jobs / result["seconds"], "turns": result["turns"]}


def run(target: Target, args: argparse.Namespace) -> None:
    for executor in args.executors.split(","):
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        for n in range(args.rounds):
            for variant in VARIANTS:
                log(f"{target.key} {executor} round {n + 1}: {variant}")
                runs[variant].append(rate(target, args.jobs, executor, variant, args.timeout))
        ratios = [
            limited["rate"] / plain["rate"]
            for plain, limited in zip(runs["noop"], runs["limited"], strict=True)
        ]
        print(f"{target.title}, {executor} executor x2, {args.jobs:,} jobs per drain")
        for variant in VARIANTS:
            rates = [r["rate"] for r in runs[variant]]
            turns = [r["turns"] for r in runs[variant]]
            shown = ", ".join(f"{x:,.0f}" for x in rates)
            print(
                f"  {'no policy' if variant == 'noop' else 'task limits':12} median "
                f"{statistics.median(rates):8,.0f} jobs/s  ({shown}); loop turns "
                f"{statistics.median(turns):,.0f}"
            )
        print(
            f"  ratio limited / none: median {statistics.median(ratios):.2f} "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--executors", default="thread,process")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    print(f"load average before: {load_average()}")
    server: Any = None
    try:
        targets: list[Target] = []
        if args.backend in ("sqlite", "both"):
            targets.append(SqliteTarget())
        if args.backend in ("postgres", "both"):
            from tests.pgserver import start_postgres

            server = start_postgres()
            targets.append(PostgresTarget(server.url, "throwaway (tests.pgserver)"))
        for target in targets:
            run(target, args)
    finally:
        if server is not None:
            server.stop()
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
