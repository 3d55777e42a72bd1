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

import statistics
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(ROOT))

from benchmarks._rounds import compare_children, ratios, spread  # noqa: E402

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


def report(title: str, rates: Mapping[str, list[float]]) -> None:
    base = statistics.median(rates["no guard"])
    print(f"{title}: single-job enqueue, jobs/s (median of {len(rates['guard'])} rounds)")
    for variant in VARIANTS:
        runs = ", ".join(f"{r:,.0f}" for r in rates[variant])
        median = statistics.median(rates[variant])
        print(f"  {variant:<9} {median:>8,.0f}  ratio {median / base:.3f}  ({runs})")
    print(
        f"  per-round ratios: guard/no guard {spread(ratios(rates['guard'], rates['no guard']))}; "
        f"bounded/guard {spread(ratios(rates['bounded'], rates['guard']))}"
    )


def main() -> int:
    return compare_children(__doc__ or "", VARIANTS, CHILD, report)


if __name__ == "__main__":
    sys.exit(main())
