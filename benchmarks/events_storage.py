"""What the change sequence costs SQLite's drain storage path: claims and outcomes of
`--jobs` jobs in batches of 20 through the backend (no worker, no executor), on a fresh
database per run in the temp directory, two variants taking turns:

* `none`: no events (the statements' own writes off);
* `shipped`: as offload ships (schema 11): each statement writes its jobs' events.

Prints jobs/s per run, the medians and the median per-round ratios to `none`.

    .venv/bin/python benchmarks/events_storage.py [--rounds 3] [--jobs 3000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(ROOT))

from tests.conformance.helpers import insert  # noqa: E402

import offload  # noqa: E402
from benchmarks._rounds import ratios, spread  # noqa: E402
from offload.backends.params import ClaimParams, FinishParams, Outcome  # noqa: E402
from offload.core.states import JobState  # noqa: E402

VARIANTS = ("none", "shipped")
BATCH = 20


def drain(directory: str, variant: str, jobs: int) -> float:
    """Jobs/s of claiming and finishing `jobs` jobs of a fresh database, as `variant`."""
    path = f"{directory}/{variant}-{time.monotonic_ns()}.db"
    app = offload.App(f"sqlite:///{path}")
    app.migrate()
    backend = app.backend
    if variant == "none":
        # this App's events area writes nothing (its queries are shared by every App)
        setattr(backend.events, "written", lambda cur, ids, kind=None: None)  # noqa: B010
    insert(backend, jobs)
    started = time.perf_counter()
    while taken := backend.claims.claim(ClaimParams("w1", "default", BATCH, 30.0)):
        outcomes = [Outcome(j.id, j.attempt, JobState.SUCCEEDED, result="1") for j in taken]
        backend.claims.finish(FinishParams("w1", outcomes))
    rate = jobs / (time.perf_counter() - started)
    app.close()
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=3000)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(args.rounds):
            for variant in VARIANTS:
                rates[variant].append(drain(directory, variant, args.jobs))
    print(f"SQLite drain storage path, {args.jobs:,} jobs in batches of {BATCH}, jobs/s")
    for variant in VARIANTS:
        shown = ", ".join(f"{r:,.0f}" for r in rates[variant])
        ratio = spread(ratios(rates[variant], rates["none"]))
        print(f"  {variant:<10} median {statistics.median(rates[variant]):7,.0f}  ({shown})  "
              f"ratio to none {ratio}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
