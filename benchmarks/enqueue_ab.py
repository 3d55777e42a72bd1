"""Interleaved A/B of enqueues between two source trees, one job per call or in batches.

Each round enqueues 3,000 jobs from each tree in turn (a fresh process and database each
time; PostgreSQL on a throwaway server that acknowledges a commit once it is written), one per
call or `--batch N` per `enqueue_many`, and then counts the Python calls of 500 more under
cProfile. Call counts do not move with the machine's load, and the producer's CPU time per job
moves less than the throughput medians do, which is why the trees take turns. On PostgreSQL
each run also reports, per job, the CPU of the server process of the producer's session (its
/proc stat) and the WAL bytes written meanwhile.

    .venv/bin/python benchmarks/enqueue_ab.py /path/to/base-tree /path/to/this-tree [--rounds 5]
    .venv/bin/python benchmarks/enqueue_ab.py BASE THIS --backend sqlite --batch 1000 --jobs 20000

With `--threads N` (or `--tasks N`), N threads (coroutines of one event loop) enqueue the
jobs at once, one per call, as the peer rig's `enqueue_threads` (`enqueue_tasks`) does; each
run then also reports the process CPU time and the voluntary and involuntary context
switches per job (getrusage), the commits per job and the mean size of the shared ones.

    .venv/bin/python benchmarks/enqueue_ab.py BASE THIS --backend sqlite --threads 32 --jobs 20000
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

from benchmarks._rounds import arguments, rounds, targets, tree_ratio  # noqa: E402

CHILD = r"""
import cProfile, os, pstats, sys, time
import offload
app = offload.App(sys.argv[1])
def server():  # the producer session's server process CPU seconds, the WAL position
    if not sys.argv[1].startswith("postgres"):
        return 0.0, None
    with app.backend.read() as cur:
        cur.execute("SELECT pg_backend_pid(), pg_current_wal_lsn()::text")
        pid, lsn = cur.fetchone()
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), lsn
def wal_since(lsn):
    if lsn is None:
        return 0.0
    with app.backend.read() as cur:
        cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (lsn,))
        return float(cur.fetchone()[0])
app.migrate()
@app.task(name="t")
def t(x: int) -> None: ...
batch = int(sys.argv[3])
def enqueue(n):
    if batch == 1:
        for i in range(n):
            t.enqueue(i)
    else:
        for start in range(0, n, batch):
            t.enqueue_many([(i,) for i in range(start, min(start + batch, n))])
enqueue(min(200 * batch, 2000))
n = int(sys.argv[2])
server_cpu, lsn = server()
started, cpu = time.perf_counter(), time.process_time()
enqueue(n)
rate = n / (time.perf_counter() - started)
cpu_us = (time.process_time() - cpu) / n * 1e6
server_us = (server()[0] - server_cpu) / n * 1e6
wal = wal_since(lsn) / n
profile = cProfile.Profile()
profile.enable()
enqueue(max(500, batch))
profile.disable()
calls = pstats.Stats(profile).total_calls / max(500, batch)
print(f"{rate:.0f} {calls:.1f} {cpu_us:.2f} {server_us:.2f} {wal:.1f}")
"""


#: Concurrent producers (`--threads`, `--tasks`): jobs/s, CPU and context switches per job
#: over the timed jobs, and the commits (every `tx`) and shared ones (`insert_group`).
CONCURRENT = r"""
import asyncio, json, resource, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
import offload
app = offload.App(sys.argv[1])
app.migrate()
@app.task(name="t")
def t(x: int) -> None: ...
n, mode, producers = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
backend = app.backend
counts = {"tx": 0, "groups": 0, "grouped": 0}
tx = backend.tx
def counted_tx(*a, **k):
    counts["tx"] += 1
    return tx(*a, **k)
backend.tx = counted_tx
jobs = backend.jobs
together = jobs._groups._together
def counted_together(group):
    counts["groups"] += 1
    counts["grouped"] += len(group)
    return together(group)
jobs._groups._together = counted_together
def run(count):
    if mode == "threads":
        def produce(seqs):
            for seq in seqs:
                t.enqueue(seq)
        with ThreadPoolExecutor(producers) as pool:
            for f in [pool.submit(produce, range(i, count, producers)) for i in range(producers)]:
                f.result()
    else:
        async def produce(seqs):
            for seq in seqs:
                await t.enqueue_async(seq)
        async def main():
            await asyncio.gather(*(produce(range(i, count, producers)) for i in range(producers)))
        asyncio.run(main())
run(min(n // 5, 2000))
for key in counts:
    counts[key] = 0
before = resource.getrusage(resource.RUSAGE_SELF)
cpu, started = time.process_time(), time.perf_counter()
run(n)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({
    "rate": n / seconds,
    "cpu_us": cpu / n * 1e6,
    "vcsw": (after.ru_nvcsw - before.ru_nvcsw) / n,
    "ivcsw": (after.ru_nivcsw - before.ru_nivcsw) / n,
    "commits": counts["tx"] / n,
    "group": counts["grouped"] / max(counts["groups"], 1),  # threads' groups only
}))
"""
FIGURES = (
    ("rate", "jobs/s", ",.0f"),
    ("cpu_us", "CPU us/job", ".1f"),
    ("vcsw", "vol. cs/job", ".2f"),
    ("ivcsw", "invol. cs/job", ".3f"),
    ("commits", "commits/job", ".3f"),
    ("group", "mean thread group", ".1f"),
)


def measure(args: argparse.Namespace, url: str, tree: str) -> dict[str, float]:
    """One run of `tree`'s child on `url`: the one-at-a-time child (rate, Python calls and
    producer CPU per job) or, with --threads/--tasks, the concurrent one (FIGURES)."""
    env = dict(os.environ, PYTHONPATH=str(Path(tree) / "src"))
    if args.threads or args.tasks:
        mode, producers = ("threads", args.threads) if args.threads else ("tasks", args.tasks)
        command = [sys.executable, "-c", CONCURRENT, url, str(args.jobs), mode, str(producers)]
    else:
        command = [sys.executable, "-c", CHILD, url, str(args.jobs), str(args.batch)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    if args.threads or args.tasks:
        figures: dict[str, float] = json.loads(out.stdout)
        return figures
    rate, calls, cpu_us, server_us, wal = out.stdout.split()
    return {
        "rate": float(rate),
        "calls": float(calls),
        "cpu_us": float(cpu_us),
        "server_us": float(server_us),
        "wal": float(wal),
    }


def report_one(args: argparse.Namespace, runs: dict[str, list[dict[str, float]]]) -> None:
    """One job or batch per call: per tree the median rate, Python calls and producer CPU."""
    per = "enqueue" if args.batch == 1 else "job"
    for tree in args.trees:
        rates = ", ".join(f"{r['rate']:,.0f}" for r in runs[tree])
        print(
            f"{tree}: median {statistics.median(r['rate'] for r in runs[tree]):,.0f} jobs/s "
            f"({rates}); {runs[tree][-1]['calls']:.1f} Python calls per {per}; producer CPU "
            f"median {statistics.median(r['cpu_us'] for r in runs[tree]):.2f} us per job"
            + (
                f"; server CPU median {statistics.median(r['server_us'] for r in runs[tree]):.2f}"
                f" us, WAL {statistics.median(r['wal'] for r in runs[tree]):.0f} bytes per job"
                if any(r["wal"] for r in runs[tree])  # PostgreSQL's only
                else ""
            )
        )


def report_concurrent(args: argparse.Namespace, runs: dict[str, list[dict[str, float]]]) -> None:
    """Concurrent producers: per tree the median of each of FIGURES, and every run's rate."""
    print("tree | " + " | ".join(label for _, label, _ in FIGURES))
    for tree in args.trees:
        medians = [statistics.median(r[key] for r in runs[tree]) for key, _, _ in FIGURES]
        cells = " | ".join(
            format(m, spec) for m, (_, _, spec) in zip(medians, FIGURES, strict=True)
        )
        print(f"{tree} | {cells}")
    for tree in args.trees:
        rates = ", ".join(f"{r['rate']:,.0f}" for r in runs[tree])
        print(f"{tree} rates: {rates}")


def main() -> int:
    parser = arguments(__doc__ or "", rounds=5, jobs=3000)
    parser.set_defaults(backend="postgres")
    parser.add_argument("trees", nargs=2, help="two checkouts, each with a src/offload")
    parser.add_argument("--batch", type=int, default=1, help="jobs per call (enqueue_many)")
    parser.add_argument("--threads", type=int, default=0, help="producer threads at once")
    parser.add_argument("--tasks", type=int, default=0, help="producer coroutines at once")
    args = parser.parse_args()
    if args.threads or args.tasks:
        producers = f"{args.threads} threads" if args.threads else f"{args.tasks} tasks"
        what, report = f"{producers}, one job per call", report_concurrent
    else:
        what, report = f"{args.batch} job(s) per call", report_one
    with targets(args.backend, durable_commits=True) as chosen:
        for target in chosen:
            runs = rounds(target, args.rounds, args.trees, partial(measure, args))
            print(f"{target.title}, {what}, {args.jobs:,} jobs per run")
            print(tree_ratio(runs, args.trees))
            report(args, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
