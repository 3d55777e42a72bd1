"""The harness the A/B benchmarks share: the backends to run on, rounds in which the variants
take turns on fresh databases (so the machine's load moves them alike), and medians of
per-round ratios."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.procinfo import load_average  # noqa: E402
from benchmarks.throughput import PostgresTarget, SqliteTarget, Target, log  # noqa: E402

T = TypeVar("T")


def arguments(doc: str, *, rounds: int, jobs: int) -> argparse.ArgumentParser:
    """A parser with the options every A/B benchmark takes: --backend, --rounds, --jobs."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--jobs", type=int, default=jobs)
    return parser


@contextlib.contextmanager
def targets(backend: str, *, durable_commits: bool = False) -> Iterator[list[Target]]:
    """The targets `backend` names ("sqlite", "postgres" or "both"); PostgreSQL is a throwaway
    server (waiting for its WAL flush at commit with `durable_commits`, as single-job enqueue
    figures need). Prints the load average before and after."""
    print(f"load average before: {load_average()}")
    server: Any = None
    try:
        chosen: list[Target] = []
        if backend in ("sqlite", "both"):
            chosen.append(SqliteTarget())
        if backend in ("postgres", "both"):
            from tests.pgserver import start_postgres

            server = start_postgres(durable_commits=durable_commits)
            chosen.append(PostgresTarget(server.url, "throwaway (tests.pgserver)", server.data_dir))
        yield chosen
    finally:
        if server is not None:
            server.stop()
        print(f"load average after: {load_average()}")


def rounds(
    target: Target, count: int, variants: Sequence[str], measure: Callable[[str, str], T]
) -> dict[str, list[T]]:
    """`measure(url, variant)` for each variant in turn, `count` rounds, each on a fresh
    database of `target`; the figures by variant."""
    figures: dict[str, list[T]] = {variant: [] for variant in variants}
    for n in range(count):
        for variant in variants:
            with target.database() as url:
                figures[variant].append(measure(url, variant))
            log(f"{target.key} round {n + 1} {variant}: {figures[variant][-1]}")
    return figures


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Per-round ratios of two variants' figures."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


def spread(values: Sequence[float], digits: int = 3) -> str:
    """`median m (min a, max b)`, the way every A/B benchmark states a ratio."""
    return (
        f"median {statistics.median(values):.{digits}f} "
        f"(min {min(values):.{digits}f}, max {max(values):.{digits}f})"
    )


def tree_ratio(runs: Mapping[str, Sequence[Mapping[str, float]]], trees: Sequence[str]) -> str:
    """The line an A/B of two source trees (`trees`: base, this) states its per-round ratio
    of the runs' `rate` in."""
    base, this = trees
    rates = {tree: [run["rate"] for run in runs[tree]] for tree in trees}
    return f"per-round rate ratio {this} / {base}: {spread(ratios(rates[this], rates[base]))}"


def child_rate(code: str, *argv: str) -> float:
    """Run `code` in a fresh interpreter (this tree's offload importable) with `argv`; the
    number it printed last, a rate."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(ROOT / "src"), str(ROOT))))
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.split()[-1])


def compare_children(
    doc: str,
    variants: Sequence[str],
    code: str,
    report: Callable[[str, Mapping[str, list[float]]], None],
) -> int:
    """The whole of a benchmark whose variants are `code` run in fresh processes (with the
    database URL, the variant and --jobs as arguments): rounds on each backend asked for,
    PostgreSQL committing durably, then `report(title, rates)` per backend."""
    args = arguments(doc, rounds=5, jobs=2000).parse_args()
    with targets(args.backend, durable_commits=True) as chosen:
        for target in chosen:
            rates = rounds(
                target,
                args.rounds,
                variants,
                lambda url, variant: child_rate(code, url, variant, str(args.jobs)),
            )
            report(target.title, rates)
    return 0
