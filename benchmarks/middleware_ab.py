"""Interleaved A/B of drain throughput: the tree before middleware hooks, this tree, and this
tree with a middleware whose job hooks do nothing (what dispatching per-job events costs).

Each round drains `--jobs` queued no-op jobs once per arm, the arms in a rotated order, each
in a fresh `python -m benchmarks.runner drain` process (2 children, process executor) of its
tree on a fresh database, as logging_ab.py does:

* base: BASE's runner (the tree before the hooks: `git archive <commit> | tar -x -C BASE`);
* this: this tree's, no middleware (the job log and the worker's observers in one place);
* noop: this tree's with `--middleware noop`.

It prints, per backend, each arm's median rate, its median per-round ratio to base, and the
worker process's CPU per job; then, from one drain per arm under cProfile, the Python calls
the worker loop's thread makes per job, which do not move with the machine's load (the
rates do: on a shared machine trust the calls and the ratios over many rounds). First it
times the dispatch alone, in this process: the supervisor's calls of a no-op middleware and
of TracingMiddleware (API only, no SDK: non-recording spans), per job, on 100-job batches.

    .venv/bin/python benchmarks/middleware_ab.py BASE [--rounds 5] [--jobs 10000] [--backend both]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.pgserver import PostgresServer, start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402


def drain(root: Path, url: str, options: list[str], jobs: int) -> tuple[float, float]:
    """One drain by `root`'s runner; its jobs per second and worker CPU us per job."""
    env = dict(os.environ, OFFLOAD_URL=url, PYTHONPATH=f"{root / 'src'}{os.pathsep}{root}")
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.runner", "drain", "--prefill", str(jobs), *options],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        check=True,
    )
    result = json.loads(out.stdout)
    if result["timed_out"] or result["succeeded"] != jobs:
        raise RuntimeError(f"drain in {root} did not finish: {result['counts']}")
    return result["processed"] / result["seconds"], result["cpu_seconds"] / jobs * 1e6


def calls_per_job(root: Path, url: str, options: list[str], jobs: int, profile: Path) -> float:
    """The Python calls of one drain's worker loop thread under cProfile, per job."""
    drain(root, url, [*options, "--profile", str(profile)], jobs)
    return float(pstats.Stats(str(profile)).total_calls) / jobs  # type: ignore[attr-defined]


def measure(
    backend: str, server: PostgresServer | None, base: Path, args: argparse.Namespace
) -> None:
    arms: dict[str, tuple[Path, list[str]]] = {
        "base": (base, []),
        "this": (ROOT, []),
        "noop": (ROOT, ["--middleware", "noop"]),
    }
    rates: dict[str, list[float]] = {arm: [] for arm in arms}
    cpus: dict[str, list[float]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory(prefix="middleware_ab_") as tmp:
        for n in range(args.rounds):
            order = list(arms)[n % len(arms) :] + list(arms)[: n % len(arms)]
            for arm in order:
                if server is None:
                    url = f"sqlite:///{tmp}/{n}_{arm}.db"
                else:
                    url = fresh_database(server.url, f"mwab_{n}_{arm}")
                root, options = arms[arm]
                rate, cpu = drain(root, url, options, args.jobs)
                rates[arm].append(rate)
                cpus[arm].append(cpu)
                print(f"{backend} round {n + 1} {arm}: {rate:,.0f} jobs/s", file=sys.stderr)
        calls: dict[str, float] = {}
        for arm, (root, options) in arms.items():
            if server is None:
                url = f"sqlite:///{tmp}/profile_{arm}.db"
            else:
                url = fresh_database(server.url, f"mwab_profile_{arm}")
            calls[arm] = calls_per_job(root, url, options, args.jobs, Path(tmp) / f"{arm}.prof")
    print(f"\n{backend}, {args.rounds} rounds of {args.jobs:,} jobs (medians):")
    for arm, runs in rates.items():
        each = ", ".join(f"{r:,.0f}" for r in runs)
        line = f"  {arm:5} {statistics.median(runs):8,.0f} jobs/s ({each})"
        if arm != "base":
            ratio = statistics.median(on / off for on, off in zip(runs, rates["base"], strict=True))
            line += f"; ratio {ratio:.3f} ({ratio - 1:+.1%}) vs base"
        cpu = statistics.median(cpus[arm])
        print(f"{line}; worker CPU {cpu:.1f} us/job; {calls[arm]:.1f} calls/job")


def dispatch_cost(rounds: int = 200) -> None:
    """Microseconds per job of the worker's middleware calls alone (best of 5 timings)."""
    import time
    from datetime import UTC, datetime

    import offload
    from offload.backends.params import Outcome
    from offload.contrib.otel import TracingMiddleware
    from offload.core.job import Job
    from offload.core.states import JobState
    from offload.runtime.executor import Finished
    from offload.runtime.hooks import Middlewares

    class Noop(offload.Middleware):
        def job_started(self, started: offload.JobStarted) -> None:
            return None

        def job_ended(self, ended: offload.JobEnded) -> None:
            return None

    now = datetime.now(UTC)
    meta = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    jobs = [
        Job(
            i,
            "t",
            "default",
            [],
            {},
            0,
            JobState.RUNNING,
            1,
            3,
            now,
            now,
            now,
            *[None] * 4,
            meta=meta,
        )
        for i in range(100)
    ]
    runs = [Finished(job, True, "null", duration=0.001) for job in jobs]
    outcomes = [Outcome(job.id, 1, JobState.SUCCEEDED, result="null") for job in jobs]
    arms: list[tuple[str, offload.Middleware]] = [
        ("noop", Noop()),
        ("tracing, no SDK", TracingMiddleware()),
    ]
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:  # the SDK is the application's, not offload's: measured if there
        pass
    else:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        arms.append(("tracing, SDK in-memory", TracingMiddleware(provider)))
    print("\nmiddleware dispatch alone, 100-job batches (best of 5):")
    for name, middleware in arms:
        chain = Middlewares([middleware])
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(rounds):
                chain.started(jobs)
                chain.ended(runs, outcomes)
            best = min(best, time.perf_counter() - start)
            if name.endswith("in-memory"):
                exporter.clear()
        print(f"  {name}: {best / (rounds * 100) * 1e6:.2f} us/job")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the tree before the hooks")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    base = args.base.resolve()
    dispatch_cost()
    if args.backend in ("sqlite", "both"):
        measure("sqlite", None, base, args)
    if args.backend in ("postgres", "both"):
        server = start_postgres()
        try:
            measure("postgres", server, base, args)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
