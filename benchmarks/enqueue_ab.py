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

`--layers` (with `--threads`) splits each job's CPU, measured per thread: above the combiner
(`Task.enqueue`, the App, the jobs store, the producer's own loop), in the combiner (its
locks, the sleep until woken, waking the next caller), and in the writes (the group's
statement and commit, or a lone caller's). The measuring costs a few us a job itself.
`--latency` (with `--threads`) adds the p50 and p99 of the calls' times, call to return.
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
extras = sys.argv[5].split(",")
layers, latency = "layers" in extras, "latency" in extras
waits = []  # with latency: each thread's list of its calls' seconds
if layers:  # each thread's CPU in the combiner and in the writes it ran (statement + commit)
    spent, mine = [], threading.local()
    def own():
        if not hasattr(mine, "cells"):
            mine.cells = [0.0, 0.0]
            spent.append(mine.cells)
        return mine.cells
    def timed(fn, cell):
        def wrapper(arg):
            started = time.thread_time()
            try:
                return fn(arg)
            finally:
                own()[cell] += time.thread_time() - started
        return wrapper
    groups = jobs._groups
    groups.submit = timed(groups.submit, 0)
    groups._alone = timed(groups._alone, 1)
    groups._together = timed(groups._together, 1)
def run(count):
    if mode == "threads":
        def produce(seqs):
            if latency:
                mine, clock = [], time.perf_counter
                waits.append(mine)
                for seq in seqs:
                    called = clock()
                    t.enqueue(seq)
                    mine.append(clock() - called)
                return
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
if layers:
    for cells in spent:
        cells[:] = [0.0, 0.0]
waits.clear()
before = resource.getrusage(resource.RUSAGE_SELF)
cpu, started = time.process_time(), time.perf_counter()
run(n)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
after = resource.getrusage(resource.RUSAGE_SELF)
figures = {}
if layers:  # per job: above the combiner, in it (waits, wake-ups, bookkeeping), writes
    submit, write = (sum(cells[i] for cells in spent) for i in (0, 1))
    figures = {"above_us": (cpu - submit) / n * 1e6, "combiner_us": (submit - write) / n * 1e6,
               "write_us": write / n * 1e6}
if latency:  # each call's time from call to return, ms
    calls = sorted(w for mine in waits for w in mine)
    figures.update(p50_ms=calls[len(calls) // 2] * 1e3, p99_ms=calls[len(calls) * 99 // 100] * 1e3)
print(json.dumps({
    **figures,
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
#: With --layers (threads only): where each job's CPU goes, measured per thread
#: (`time.thread_time()` around the combiner's `submit` and around each write it runs, which
#: costs about a microsecond a job itself: the other figures of such a run are not comparable
#: to a plain run's).
#: With --latency (threads only): each call's time from its call to its return.
LATENCY = (("p50_ms", "p50 ms", ".2f"), ("p99_ms", "p99 ms", ".2f"))
LAYERS = (
    ("above_us", "above us/job", ".1f"),
    ("combiner_us", "combiner us/job", ".1f"),
    ("write_us", "writes us/job", ".1f"),
)


def measure(args: argparse.Namespace, url: str, tree: str) -> dict[str, float]:
    """One run of `tree`'s child on `url`: the one-at-a-time child (rate, Python calls and
    producer CPU per job) or, with --threads/--tasks, the concurrent one (FIGURES)."""
    env = dict(os.environ, PYTHONPATH=str(Path(tree) / "src"))
    if args.threads or args.tasks:
        mode, producers = ("threads", args.threads) if args.threads else ("tasks", args.tasks)
        on = (("layers", args.layers), ("latency", args.latency))
        extras = ",".join(name for name, wanted in on if wanted) or "plain"
        command = [sys.executable, "-c", CONCURRENT, url, str(args.jobs), mode, str(producers)]
        command.append(extras)
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
    """Concurrent producers: per tree the median of each of FIGURES (and LAYERS), and every
    run's rate."""
    shown = FIGURES + (LAYERS if args.layers else ()) + (LATENCY if args.latency else ())
    print("tree | " + " | ".join(label for _, label, _ in shown))
    for tree in args.trees:
        medians = [statistics.median(r[key] for r in runs[tree]) for key, _, _ in shown]
        cells = " | ".join(format(m, spec) for m, (_, _, spec) in zip(medians, shown, strict=True))
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
    parser.add_argument(
        "--layers", action="store_true", help="with --threads: CPU per job by layer (LAYERS)"
    )
    parser.add_argument(
        "--latency", action="store_true", help="with --threads: p50 and p99 of each call"
    )
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
