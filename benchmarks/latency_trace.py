"""Where an idle worker's start latency goes: one job at a time at 50/s, each traced from
the producer's enqueue call to the first line of the task function, step by step.

A worker (process executor, 2 slots, as in throughput.py's latency row) idles in its own
process with its calls wrapped: the loop's wait (when it woke), `claims.take` (when the
claim began and ended, and which jobs it took) and the executors' `submit` (when each job
was handed over). The task (`benchmarks.bench_app:stamp`) returns the wall-clock time it
began; the producer notes when each `enqueue()` was called and when it returned. All are
`time.time()` of one host, so they compare across processes. Steps, per job:

    enqueue   the producer's call, to its return (the commit)
    wake-up   the return, to the worker's wait returning (the notification's delivery)
    loop      the wake-up, to the claim's start
    claim     the claim transaction
    dispatch  the claim's end, to the executor's submit
    hand-off  the submit, to the first line of the task in the job child
    worker    the wake-up to the first line of the task (loop to hand-off: the worker's
              side, which the producer's load moves least)

    .venv/bin/python benchmarks/latency_trace.py [--backend sqlite|postgres|both]
        [--jobs 200] [--pg-url URL]

Without --pg-url the PostgreSQL figures come from a throwaway server that does not wait
for the disk (fsync off): its commit is not the durable one.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

RATE = 50.0  # jobs per second offered
STEPS = ("enqueue", "wake-up", "loop", "claim", "dispatch", "hand-off")


# -- the worker's side ------------------------------------------------------------------


class Trace:
    """Wall-clock stamps of an idle worker's wait returns, claims and hand-offs."""

    def __init__(self) -> None:
        self.wakes: list[float] = []
        self.claims: list[tuple[float, float, list[int]]] = []
        self.submits: dict[int, float] = {}

    def attach(self, worker: Any) -> None:
        """Wrap the worker's wait, claim and executors' submit (see the module docstring)."""
        waiter = worker._waiter
        wait = waiter.wait

        def traced_wait(*args: Any, **kwargs: Any) -> Any:
            ready = wait(*args, **kwargs)
            if ready:
                self.wakes.append(time.time())
            return ready

        waiter.wait = traced_wait
        claims = worker.backend.claims
        take = claims.take

        def traced_take(*args: Any, **kwargs: Any) -> Any:
            start = time.time()
            took = take(*args, **kwargs)
            if took.jobs:
                self.claims.append((start, time.time(), [job.id for job in took.jobs]))
            return took

        claims.take = traced_take
        make_pool = worker._make_pool

        def traced_pool() -> Any:
            pool = make_pool()
            for executor in pool.executors.values():
                executor.submit = self._traced_submit(executor.submit)
            return pool

        worker._make_pool = traced_pool

    def _traced_submit(self, submit: Callable[[list[Any]], None]) -> Callable[[list[Any]], None]:
        """`submit`, noting when each job was handed over."""

        def traced(jobs: list[Any]) -> None:
            now = time.time()
            for job in jobs:
                self.submits[job.id] = now
            submit(jobs)

        return traced

    def dump(self, path: str) -> None:
        """Write the stamps to `path` as JSON, for the producer to read."""
        with open(path, "w") as f:
            json.dump({"wakes": self.wakes, "claims": self.claims, "submits": self.submits}, f)


def serve(trace_path: str) -> None:
    """The worker process: run until SIGTERM, then write the trace."""
    from benchmarks import bench_app
    from benchmarks.runner import make_worker

    worker = make_worker("process", 2, burst=False)
    trace = Trace()
    trace.attach(worker)
    worker.run()
    trace.dump(trace_path)
    bench_app.app.close()


# -- the producer's side ----------------------------------------------------------------


def run(url: str, jobs: int) -> dict[str, list[float]]:
    """Trace `jobs` jobs on the database at `url`; milliseconds per step, per job."""
    os.environ["OFFLOAD_URL"] = url
    from benchmarks import bench_app

    app = bench_app.app
    app.migrate()
    with tempfile.TemporaryDirectory() as tmp:
        trace_path = f"{tmp}/trace.json"
        env = dict(os.environ, OFFLOAD_URL=url)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", trace_path],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not app.backend.workers.list():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the worker did not start")
                time.sleep(0.05)
            time.sleep(2.0)  # its children forked, the worker idle in its wait
            sent: dict[int, tuple[float, float]] = {}
            start = time.perf_counter()
            for i in range(jobs):
                pause = start + i / RATE - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                called = time.time()
                handle = bench_app.stamp.enqueue()
                sent[handle.id] = (called, time.time())
            deadline = time.monotonic() + 120
            while app.queue_counts().get("default", {}).get("succeeded", 0) < jobs:
                if time.monotonic() > deadline:
                    raise SystemExit(f"jobs not done: {app.queue_counts()}")
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with open(trace_path) as f:
            trace = json.load(f)
    began = {job_id: app.job(job_id).result(timeout=10) for job_id in sent}
    app.close()
    return steps(sent, began, trace)


def steps(
    sent: dict[int, tuple[float, float]], began: dict[int, Any], trace: dict[str, Any]
) -> dict[str, list[float]]:
    """Each job's time in each step, in ms, from the producer's and the worker's stamps."""
    wakes = sorted(trace["wakes"])
    claimed = {job_id: (s, e) for s, e, ids in trace["claims"] for job_id in ids}
    out: dict[str, list[float]] = {step: [] for step in (*STEPS, "worker", "total")}
    for job_id, (called, returned) in sent.items():
        claim_start, claim_end = claimed[job_id]
        woke = max((w for w in wakes if w <= claim_start), default=claim_start)
        submitted = trace["submits"][str(job_id)]
        task = float(began[job_id])
        marks = (called, returned, woke, claim_start, claim_end, submitted, task)
        for step, (a, b) in zip(STEPS, itertools.pairwise(marks), strict=True):
            out[step].append((b - a) * 1000)
        out["worker"].append((task - woke) * 1000)
        out["total"].append((task - called) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    """The value at quantile `q` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def table(title: str, found: dict[str, list[float]]) -> None:
    """p50, mean and p99 of each step."""
    print(f"\n{title}: ms per job, {len(found['total'])} jobs at {RATE:g}/s")
    print(f"{'step':<10}{'p50':>9}{'mean':>9}{'p99':>9}")
    for step, values in found.items():
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(f"{step:<10}{p50:>9.3f}{statistics.fmean(values):>9.3f}{p99:>9.3f}")


@contextlib.contextmanager
def postgres(pg_url: str | None) -> Iterator[str]:
    """A fresh database: on the server at `pg_url`, or on a throwaway one."""
    from tests.pgserver import start_postgres
    from tests.pgserver.databases import fresh_database

    server = None if pg_url else start_postgres()
    try:
        base = pg_url or (server.url if server else "")
        yield fresh_database(base, f"offload_trace_{os.getpid()}")
    finally:
        if server is not None:
            server.stop()


def main() -> int:
    """Trace the backends asked for (PostgreSQL in a process of its own, see below)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--pg-url", help="a superuser URL of a server to use")
    parser.add_argument("--serve", metavar="TRACE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            table("SQLite (synchronous=FULL)", run(f"sqlite:///{tmp}/trace.db", args.jobs))
    if args.backend in ("postgres", "both"):
        # A second backend in this process: the bench app reads $OFFLOAD_URL at import.
        code = [sys.executable, str(Path(__file__).resolve()), "--backend", "postgres"]
        if args.backend == "both":
            code += ["--jobs", str(args.jobs)] + (["--pg-url", args.pg_url] if args.pg_url else [])
            return subprocess.call(code)
        with postgres(args.pg_url) as url:
            title = "PostgreSQL" + ("" if args.pg_url else " (throwaway server, fsync off)")
            table(title, run(url, args.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
