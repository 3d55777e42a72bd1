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

import statistics
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(ROOT))

from benchmarks._rounds import compare_children, ratios, spread  # noqa: E402

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


def report(title: str, rates: Mapping[str, list[float]]) -> None:
    print(f"{title}: single-job enqueue, jobs/s (median of {len(rates['plain'])} rounds)")
    for variant in VARIANTS:
        runs = ", ".join(f"{r:,.0f}" for r in rates[variant])
        shown = spread(ratios(rates[variant], rates["plain"]))
        median = statistics.median(rates[variant])
        print(f"  {variant:<12} {median:>8,.0f}  ratio {shown}  ({runs})")


def main() -> int:
    return compare_children(__doc__ or "", VARIANTS, CHILD, report)


if __name__ == "__main__":
    sys.exit(main())
