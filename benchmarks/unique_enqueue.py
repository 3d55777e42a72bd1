"""Single-job enqueue with a unique key, or an idempotency key, vs without.

Three variants, each a fresh process and database, taking turns within every round so that
the machine's load moves them alike:

* `plain`: no key: one insert statement, as every enqueue without keys;
* `unique`: `unique=True` with distinct arguments, so every enqueue stores a job: the keyed
  path (lock the key, read its holders, decide, insert) in one transaction;
* `idempotency`: a distinct idempotency key per call, the same path.

Each run enqueues `--jobs` jobs one per call (each a durable commit) after 200 to warm up;
figures are jobs/s, medians over the rounds, and ratios to `plain` (medians of the
per-round ratios). PostgreSQL runs on a throwaway server that waits for its WAL flush at
commit (`durable_commits`).

    .venv/bin/python benchmarks/unique_enqueue.py [--rounds 5] [--jobs 2000] [--backend both]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.pgserver import start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402

VARIANTS = ("plain", "unique", "idempotency")

CHILD = r"""
import sys, time
import offload
url, variant, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = offload.App(url)
app.migrate()
@app.task(name="t", unique=variant == "unique")
def t(x: int) -> None: ...
def enqueue(i: int) -> None:
    if variant == "idempotency":
        t.options(idempotency_key=f"k{i}").enqueue(i)
    else:
        t.enqueue(i)
for i in range(-200, 0):
    enqueue(i)
started = time.perf_counter()
for i in range(n):
    enqueue(i)
print(f"{n / (time.perf_counter() - started):.1f}")
"""


def run(url: str, variant: str, jobs: int) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(ROOT / "src"), str(ROOT))))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, variant, str(jobs)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


def measure(backend: str, rounds: int, jobs: int, pg_url: str | None) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            for i, variant in enumerate(VARIANTS):
                if backend == "sqlite":
                    url = f"sqlite:///{tmp}/bench_{n}_{i}.db"
                else:
                    assert pg_url is not None
                    url = fresh_database(pg_url, f"unique_{n}_{i}")
                rates[variant].append(run(url, variant, jobs))
                print(f"{backend} round {n + 1} {variant}: {rates[variant][-1]:,.0f}/s",
                      file=sys.stderr)  # fmt: skip
    return rates


def report(backend: str, rates: dict[str, list[float]]) -> None:
    print(f"{backend}: single-job enqueue, jobs/s (median of {len(rates['plain'])} rounds)")
    for variant in VARIANTS:
        runs = ", ".join(f"{r:,.0f}" for r in rates[variant])
        ratios = [v / p for v, p in zip(rates[variant], rates["plain"], strict=True)]
        print(
            f"  {variant:<12} {statistics.median(rates[variant]):>8,.0f}  "
            f"ratio {statistics.median(ratios):.3f} (min {min(ratios):.3f}, "
            f"max {max(ratios):.3f})  ({runs})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = {}
    for backend in backends:
        if backend == "postgres":
            server = start_postgres(durable_commits=True)
            try:
                results[backend] = measure(backend, args.rounds, args.jobs, server.url)
            finally:
                server.stop()
        else:
            results[backend] = measure(backend, args.rounds, args.jobs, None)
    for backend, rates in results.items():
        report(backend, rates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
