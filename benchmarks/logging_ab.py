"""Interleaved A/B of drain throughput with the worker's per-job log lines off and on.

Each round drains `--jobs` queued no-op jobs once per arm, the arms in a rotated order, each
in a fresh `python -m benchmarks.runner drain` process (2 children) on a fresh database, its
stderr going to a file as a real worker's log would:

* off: `--log-level WARNING` (no job lines);
* text / json: `--log-level INFO` with that `--log-format` (two lines per job).

It prints, per backend, each arm's median rate over the rounds, the cost of each "on" arm as
the median of the per-round ratios to "off", and the log lines written per job.

    .venv/bin/python benchmarks/logging_ab.py [--rounds 5] [--jobs 20000] [--backend both]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.pgserver import PostgresServer, start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402

#: Each arm's runner options.
ARMS = {
    "off": ["--log-level", "WARNING"],
    "text": ["--log-level", "INFO", "--log-format", "text"],
    "json": ["--log-level", "INFO", "--log-format", "json"],
}


def drain(
    url: str, arm: str, jobs: int, log: Path, arms: dict[str, list[str]] = ARMS
) -> tuple[float, float]:
    """One drain in a fresh runner process with `arms[arm]`'s options; return its jobs per
    second and the worker process's CPU microseconds per job (which moves less with the
    machine's load)."""
    env = dict(os.environ, OFFLOAD_URL=url, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    with log.open("wb") as stderr:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.runner", "drain", "--prefill", str(jobs)]
            + arms[arm],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            check=True,
        )
    result = json.loads(out.stdout)
    if result["timed_out"] or result["succeeded"] != jobs:
        raise RuntimeError(f"{arm} drain did not finish: {result['counts']}")
    return result["processed"] / result["seconds"], result["cpu_seconds"] / jobs * 1e6


def measure(
    backend: str,
    server: PostgresServer | None,
    args: argparse.Namespace,
    arms: dict[str, list[str]] = ARMS,
) -> None:
    """Drain once per arm per round (arms rotated), then print each arm's median rate and
    its median ratio to the first arm (the baseline)."""
    base = next(iter(arms))
    rates: dict[str, list[float]] = {arm: [] for arm in arms}
    cpus: dict[str, list[float]] = {arm: [] for arm in arms}
    lines: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="drain_ab_") as tmp:
        for n in range(args.rounds):
            order = list(arms)[n % len(arms) :] + list(arms)[: n % len(arms)]
            for arm in order:
                if server is None:
                    url = f"sqlite:///{tmp}/{n}_{arm}.db"
                else:
                    url = fresh_database(server.url, f"logab_{n}_{arm}")
                log = Path(tmp) / f"{n}_{arm}.log"
                rate, cpu = drain(url, arm, args.jobs, log, arms)
                rates[arm].append(rate)
                cpus[arm].append(cpu)
                with log.open("rb") as text:
                    lines[arm] = sum(1 for _ in text)
                print(f"{backend} round {n + 1} {arm}: {rate:,.0f} jobs/s", file=sys.stderr)
    print(f"\n{backend}, {args.rounds} rounds of {args.jobs:,} jobs (medians):")
    for arm, runs in rates.items():
        each = ", ".join(f"{r:,.0f}" for r in runs)
        line = f"  {arm:5} {statistics.median(runs):8,.0f} jobs/s ({each})"
        if arm != base:
            ratios = [on / off for on, off in zip(runs, rates[base], strict=True)]
            ratio = statistics.median(ratios)
            line += f"; ratio {ratio:.3f} ({ratio - 1:+.1%}) vs {base}"
        cpu = statistics.median(cpus[arm])
        print(f"{line}; worker CPU {cpu:.1f} us/job; {lines[arm] / args.jobs:.2f} lines/job")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        measure("sqlite", None, args)
    if args.backend in ("postgres", "both"):
        server = start_postgres()
        try:
            measure("postgres", server, args)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
