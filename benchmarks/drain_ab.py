"""Interleaved A/B of a drain of no-op jobs between two source trees, with CPU per job.

Each round runs `benchmarks.runner drain` once from each tree in turn (a fresh process and
database each time; PostgreSQL on one throwaway server; the rounds are `benchmarks._rounds`'s,
`--backend both` runs them on each backend in turn), and reports medians of the drain
rate and of the CPU each job costs: the worker process's (and of it, the thread CPU spent
in the claim's and the finish's calls), its job children's (read from
/proc just before the executor closes them) and, on PostgreSQL, the server's (its
postmaster's own and reaped children's time, plus its live children's). CPU per job moves
far less with the machine's load than the rate, which is why both are shown.

    .venv/bin/python benchmarks/drain_ab.py BASE THIS [--backend sqlite] [--rounds 5]
    .venv/bin/python benchmarks/drain_ab.py BASE THIS --executor thread --jobs 20000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks._rounds import arguments, rounds, targets, tree_ratio  # noqa: E402
from benchmarks.throughput import PostgresTarget, Target  # noqa: E402

#: Runs the tree's own runner, adding the job children's CPU seconds to its JSON.
CHILD = r"""
import contextlib, io, json, os, sys, time
from offload.backends.sql import claims
from offload.runtime.processes import executor as pe
from benchmarks import runner

children = [0.0]
sql = {"take": 0.0, "finish": 0.0}

def thread_cpu(name):
    call = getattr(claims.SqlClaims, name)

    def timed(self, *args, **kwargs):
        start = time.thread_time()
        try:
            return call(self, *args, **kwargs)
        finally:
            sql[name] += time.thread_time() - start

    setattr(claims.SqlClaims, name, timed)

for name in sql:
    thread_cpu(name)
close = pe.ProcessExecutor.close

def measured_close(self):
    tick = os.sysconf("SC_CLK_TCK")
    for slot in self._slots:
        with open(f"/proc/{slot.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        children[0] += (int(fields[11]) + int(fields[12])) / tick
    close(self)

pe.ProcessExecutor.close = measured_close
out = io.StringIO()
with contextlib.redirect_stdout(out):
    runner.main(sys.argv[1:])
result = json.loads(out.getvalue())
result["children_cpu_seconds"] = children[0]
result["sql_cpu_seconds"] = sql
print(json.dumps(result))
"""


def server_cpu(data_dir: Path) -> float:
    """CPU seconds a PostgreSQL server has used so far: its postmaster's own and reaped
    children's, plus its live children's."""
    tick = os.sysconf("SC_CLK_TCK")
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])

    def stat(pid: int) -> list[str]:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()

    fields = stat(postmaster)
    total = sum(int(x) for x in fields[11:15])
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = stat(int(entry))
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def measure(target: Target, args: argparse.Namespace, url: str, tree: str) -> dict[str, float]:
    """One drain of `args.jobs` jobs on `url` by `tree`'s runner: its rate and CPU per job."""
    data_dir = target.data_dir if isinstance(target, PostgresTarget) else None
    env = dict(os.environ, OFFLOAD_URL=url, PYTHONPATH=f"{tree}/src{os.pathsep}{tree}")
    command = [sys.executable, "-c", CHILD, "drain", "--executor", args.executor]
    command += ["--concurrency", str(args.concurrency), "--prefill", str(args.jobs)]
    before = server_cpu(data_dir) if data_dir else 0.0
    out = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    time.sleep(0.3)  # the server reaps the run's backends
    after = server_cpu(data_dir) if data_dir else 0.0
    jobs = result["processed"]
    return {
        "rate": jobs / result["seconds"],
        "worker": result["cpu_seconds"] / jobs * 1e6,
        "children": result["children_cpu_seconds"] / jobs * 1e6,
        "claim": result["sql_cpu_seconds"]["take"] / jobs * 1e6,
        "finish": result["sql_cpu_seconds"]["finish"] / jobs * 1e6,
        # The server also worked on the (untimed) prefill: an upper bound.
        "server": (after - before) / jobs * 1e6,
    }


def report(runs: dict[str, list[dict[str, float]]]) -> None:
    """Per tree the median rate (and every run's) and the medians of the CPU per job."""
    for tree, measured in runs.items():

        def median(key: str, measured: list[dict[str, float]] = measured) -> float:
            return statistics.median(r[key] for r in measured)

        rates = ", ".join(f"{r['rate']:,.0f}" for r in measured)
        print(
            f"{tree}: median {median('rate'):,.0f} jobs/s "
            f"({rates}); CPU us/job: worker "
            f"{median('worker'):.1f} (claim {median('claim'):.1f}, finish "
            f"{median('finish'):.1f}), children {median('children'):.1f}, "
            f"server {median('server'):.1f}"
        )


def main() -> int:
    parser = arguments(__doc__ or "", rounds=5, jobs=20000)
    parser.set_defaults(backend="postgres")
    parser.add_argument("trees", nargs=2, help="two checkouts, each with a src/offload")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--executor", choices=("process", "thread", "async"), default="process")
    args = parser.parse_args()
    with targets(args.backend) as chosen:
        for target in chosen:
            runs = rounds(target, args.rounds, args.trees, partial(measure, target, args))
            print(
                f"{target.title}, {args.executor} executor, concurrency {args.concurrency}, "
                f"{args.jobs:,} jobs, {args.rounds} rounds"
            )
            print(tree_ratio(runs, args.trees))
            report(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
