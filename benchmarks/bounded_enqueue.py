"""Single-job enqueue into a bounded queue vs an unbounded one, and the guard's own cost.

Three variants, each a fresh process and database, taking turns within every round so that
the machine's load moves them alike:

* `no guard`: an unbounded queue with the plain insert as it was before back pressure
  (the `unbounded` guard replaced by `true` in the statement text, an A/B of the statement);
* `guard`: an unbounded queue, the plain insert as shipped (its guard checks that the
  queue has no admission policy);
* `bounded`: a queue with `max_depth=1,000,000`: the admitted path (lock the policy row,
  count the jobs not started, decide, insert) in one transaction.

Each run enqueues `--jobs` jobs one per call (each a durable commit) after 200 to warm up;
figures are jobs/s, medians over the rounds, and ratios to `no guard`. PostgreSQL runs on
a throwaway server that waits for its WAL flush at commit (`durable_commits`).

    .venv/bin/python benchmarks/bounded_enqueue.py [--rounds 5] [--jobs 2000] [--backend both]
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

VARIANTS = ("no guard", "guard", "bounded")

CHILD = r"""
import sys, time
import offload
url, variant, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = offload.App(url)
app.migrate()
if variant == "bounded":
    app.queue("q", max_depth=1_000_000)
@app.task(name="t", queue="q")
def t(x: int) -> None: ...
if variant == "no guard":  # the statement without its guard: the insert as it was before
    jobs = app.backend.q["jobs"]
    guard = "\n".join(
        line for line in jobs["unbounded"].splitlines() if not line.lstrip().startswith("--")
    )
    assert guard in jobs.text["insert_one"]
    jobs.text["insert_one"] = jobs.text["insert_one"].replace(guard, "true")
for i in range(200):
    t.enqueue(i)
started = time.perf_counter()
for i in range(n):
    t.enqueue(i)
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
                    url = fresh_database(pg_url, f"bounded_{n}_{i}")
                rates[variant].append(run(url, variant, jobs))
                print(f"{backend} round {n + 1} {variant}: {rates[variant][-1]:,.0f}/s",
                      file=sys.stderr)  # fmt: skip
    return rates


def report(backend: str, rates: dict[str, list[float]]) -> None:
    base = statistics.median(rates["no guard"])
    print(f"{backend}: single-job enqueue, jobs/s (median of {len(rates['guard'])} rounds)")
    for variant in VARIANTS:
        runs = ", ".join(f"{r:,.0f}" for r in rates[variant])
        median = statistics.median(rates[variant])
        print(f"  {variant:<9} {median:>8,.0f}  ratio {median / base:.3f}  ({runs})")
    pairs = [g / b for g, b in zip(rates["guard"], rates["no guard"], strict=True)]
    bounded = [g / b for g, b in zip(rates["bounded"], rates["guard"], strict=True)]
    print(
        f"  per-round ratios: guard/no guard median {statistics.median(pairs):.3f} "
        f"(min {min(pairs):.3f}, max {max(pairs):.3f}); bounded/guard median "
        f"{statistics.median(bounded):.3f} (min {min(bounded):.3f}, max {max(bounded):.3f})"
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
