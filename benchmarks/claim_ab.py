"""Interleaved A/B of PostgreSQL claims and outcomes between two source trees: the server
CPU per job of a worker's `claims.take` + `claims.finish`, K jobs a call.

Each round runs, from each tree in turn, a process on a fresh database of one throwaway
server: it queues the jobs (`enqueue_many`, untimed), then claims K at a time and records
each batch's outcomes until N jobs are done, and reports the CPU of the server process of
its session (/proc stat: a local server; clock ticks of 10 ms, so keep N * cost well above
that) and the wall time, per job. K=1 is an idle worker's claim (the start-latency path),
larger K a busy worker's. Medians of the rounds, and of the per-round ratios.

    .venv/bin/python benchmarks/claim_ab.py BASE THIS [--rounds 5] [--jobs 4000] [--per-call 1 2 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks._rounds import ratios, rounds, spread, targets  # noqa: E402

#: Runs in the tree under test: argv is the URL, the jobs and the jobs per call.
CHILD = r"""
import json, os, sys, time
import offload
from offload.backends.params import ClaimParams, FinishParams, Outcome
from offload.core.states import JobState
url, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
app = offload.App(url)
app.migrate()
@app.task(name="noop")
def noop(i: int) -> None: ...
for start in range(0, n + 200, 1000):
    noop.enqueue_many([(i,) for i in range(1000)])
backend = app.backend
def session():  # the bookkeeping session's server process (claims and outcomes use it)
    with backend.tx(relaxed=True) as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]
def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
def run(count):
    done = 0
    while done < count:
        jobs = backend.claims.take(ClaimParams("w", "default", k, 30.0, None)).jobs
        outcomes = [Outcome(j.id, j.attempt, JobState.SUCCEEDED, result="null") for j in jobs]
        backend.claims.finish(FinishParams("w", outcomes))
        done += len(jobs)
run(200)
pid = session()
used, started = cpu(pid), time.perf_counter()
run(n)
used, seconds = cpu(pid) - used, time.perf_counter() - started
assert session() == pid, "the claims ran on another session"
print(json.dumps({"server": used / n * 1e6, "wall": seconds / n * 1e6}))
"""


def measure(jobs: int, k: int, url: str, tree: str) -> dict[str, float]:
    """One run of `tree`'s child on `url`: server CPU and wall time per job."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(jobs), str(k)],
        env=dict(os.environ, PYTHONPATH=str(Path(tree) / "src")),
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(out.stdout)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, help="two checkouts, each with a src/offload")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=4000, help="jobs per run (N)")
    parser.add_argument("--per-call", type=int, nargs="+", default=[1, 2, 50], help="K")
    args = parser.parse_args()
    base, this = args.trees
    with targets("postgres") as (target,):
        for k in args.per_call:
            jobs = args.jobs * max(1, k // 10)  # more jobs where each costs less
            got = rounds(target, args.rounds, args.trees, partial(measure, jobs, k))
            print(f"{k} job(s) per call, {jobs:,} jobs per run, {args.rounds} rounds")
            for tree in args.trees:
                server_us = statistics.median(r["server"] for r in got[tree])
                wall_us = statistics.median(r["wall"] for r in got[tree])
                print(f"  {tree}: server CPU {server_us:.1f} us/job, wall {wall_us:.1f} us/job")
            server = ratios([r["server"] for r in got[this]], [r["server"] for r in got[base]])
            print(f"  server CPU per-round ratio {this} / {base}: {spread(server)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
