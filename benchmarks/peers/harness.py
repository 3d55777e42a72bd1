"""Runs ONE workload on ONE system, in the system's own interpreter; prints one JSON line.

    <venv>/bin/python -m benchmarks.peers.harness '<spec as JSON>'

The orchestrator (`python -m benchmarks.peers`) starts this with offload's venv for offload
and the raw rows, and with `benchmarks/peers/.venv` for the peers. Each invocation gets fresh
storage: a new SQLite file, a new PostgreSQL database (dropped afterwards) or an emptied
Redis (FLUSHALL); then it imports the adapter module (which builds the system's objects from
$PEERS_URL), runs the workload within its time bound, and stops every worker it started.
Standard library only (plus psycopg for the PostgreSQL database, present in both venvs).

Workloads (`kind`):
* `enqueue_one`: n jobs, one call each; jobs/s over the loop.
* `enqueue_batch`: n jobs in calls of `batch`; jobs/s.
* `enqueue_threads`: n jobs, one call each, from `producers` threads at once (a WSGI
  server's); jobs/s.
* `enqueue_tasks`: n jobs, one call each, from `producers` coroutines at once on one event
  loop (an ASGI server's), through the adapter's `enqueue_async` (else `enqueue_one` in a
  thread); jobs/s.
* `enqueue_procs`: n jobs, one call each, from `producers` processes of their own (each runs
  this module with `--producer`, connects through the adapter's `attach`, then waits for
  the go); jobs/s from the first producer's first call to the last one's last return.
* `drain`: n jobs queued first (untimed; batches of 1,000 where the system has a batch API),
  then the workers are started: jobs/s from the start of the worker processes to the start
  of the last job (marks), and the steady rate (first job start to last).
* `latency`: workers started, 4 warm-up jobs, 1 s idle (memory measured), then n jobs one at
  a time at `rate`/s: start (in the task) minus the producer's time.time() just before the
  enqueue call, per job.
* `scale`: `backlog` jobs queued, then on PostgreSQL storage `VACUUM (ANALYZE)` of the
  system's whole database (every PostgreSQL system alike: `settle`), then `runs` times: start
  workers, time the next `window` jobs (steady rate: first to last start), stop the workers.
  The target is a drain with a backlog *queued*, not one filled a second ago: until its first
  ANALYZE a freshly filled table has no statistics, and the planner's defaults (a column
  `IS NULL` for 0.5% of rows, an equality for 0.5%) take a million-row backlog for a handful
  of rows, so a claim can plan a read and sort of the whole backlog (offload's did: 560 ms
  per claim at 1,000,000, benchmarks/RESULTS.md) until autovacuum's first visit, up to
  `autovacuum_naptime` (60 s) later. A backlog queued for longer has been analyzed (and
  docs/operations.md says to ANALYZE after a bulk backfill); statistics gathered before it
  arrived, even with no job waiting, plan the claim well. SQLite has no automatic ANALYZE:
  its rows run as users' do, without one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import inspect
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.peers import marks
from benchmarks.peers.adapters.base import Adapter, memory
from benchmarks.peers.resp import command

WARMUP = 4
WARMUP_SEQ = 900_000_000  # warm-up jobs' sequence numbers start here
POLL = 0.02  # seconds between looks at the marks while waiting


class Bound(Exception):
    """The workload did not finish within its time bound."""

    def __init__(self, message: str, partial: float | None = None) -> None:
        super().__init__(message)
        self.partial = partial


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call an adapter method that may or may not be a coroutine function."""
    result = fn(*args)
    if inspect.isawaitable(result):
        return await result
    return result


# -- storage: a fresh one per invocation --------------------------------------------------


class Storage:
    """Makes the fresh SQLite file / PostgreSQL database / empty Redis of this run."""

    def __init__(self, spec: dict[str, Any], workdir: Path) -> None:
        self.kind: str = spec["storage"]
        self.spec = spec
        self.workdir = workdir
        self.dbname = f"peers_{os.getpid()}"

    def __enter__(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.workdir / 'jobs.db'}"
        if self.kind == "redis":
            command(self.spec["redis_url"], "FLUSHALL")
            return str(self.spec["redis_url"])
        if self.kind == "pg":
            self._pg(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
            self._pg(f'CREATE DATABASE "{self.dbname}" TEMPLATE template0')
            return str(self.spec["pg_url"]).rsplit("/", 1)[0] + "/" + self.dbname
        return f"file://{self.workdir}"

    def __exit__(self, *exc: object) -> None:
        if self.kind == "pg":
            with contextlib.suppress(Exception):
                self._pg(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        elif self.kind == "redis":
            with contextlib.suppress(Exception):
                command(self.spec["redis_url"], "FLUSHALL")

    def _pg(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.spec["pg_url"], autocommit=True, connect_timeout=30) as conn:
            conn.execute(sql.encode())


# -- the workloads ------------------------------------------------------------------------


async def enqueue_loop(adapter: Adapter, seqs: range, deadline: float) -> None:
    """One enqueue call per job; the bound is checked every 64 calls."""
    fn = adapter.enqueue_one
    if inspect.iscoroutinefunction(fn):
        for seq in seqs:
            await fn(seq)
            if seq & 63 == 0 and time.perf_counter() > deadline:
                raise Bound(f"only {seq - seqs.start + 1} of {len(seqs)} jobs enqueued")
    else:
        for seq in seqs:
            fn(seq)
            if seq & 63 == 0 and time.perf_counter() > deadline:
                raise Bound(f"only {seq - seqs.start + 1} of {len(seqs)} jobs enqueued")


async def batch_loop(adapter: Adapter, seqs: range, batch: int, deadline: float) -> None:
    for i in range(seqs.start, seqs.stop, batch):
        await call(adapter.enqueue_batch, range(i, min(i + batch, seqs.stop)))
        if time.perf_counter() > deadline:
            raise Bound(f"only {i + batch - seqs.start} of {len(seqs)} jobs enqueued")


async def check_queued(adapter: Adapter, n: int) -> None:
    found = await call(adapter.queued)
    if found is not None and found != n:
        raise RuntimeError(f"expected {n} queued jobs, the system reports {found}")


async def w_enqueue_one(adapter: Adapter, w: dict[str, Any]) -> dict[str, Any]:
    n = w["n"]
    start = time.perf_counter()
    await enqueue_loop(adapter, range(n), start + w["timeout"])
    seconds = time.perf_counter() - start
    await check_queued(adapter, n)
    return {"value": n / seconds, "seconds": seconds}


async def w_enqueue_batch(adapter: Adapter, w: dict[str, Any]) -> dict[str, Any]:
    n = w["n"]
    start = time.perf_counter()
    await batch_loop(adapter, range(n), w["batch"], start + w["timeout"])
    seconds = time.perf_counter() - start
    await check_queued(adapter, n)
    return {"value": n / seconds, "seconds": seconds}


def _slices(n: int, parts: int) -> list[range]:
    return [range(i, n, parts) for i in range(parts)]


async def w_enqueue_threads(adapter: Adapter, w: dict[str, Any]) -> dict[str, Any]:
    n, deadline = w["n"], time.perf_counter() + w["timeout"]

    def produce(seqs: range) -> None:
        for seq in seqs:
            adapter.enqueue_one(seq)
            if seq & 63 == 0 and time.perf_counter() > deadline:
                raise Bound(f"a producer thread passed its bound at job {seq}")

    def all_threads() -> None:
        with concurrent.futures.ThreadPoolExecutor(w["producers"]) as pool:
            for done in [pool.submit(produce, seqs) for seqs in _slices(n, w["producers"])]:
                done.result()

    start = time.perf_counter()
    await asyncio.to_thread(all_threads)
    seconds = time.perf_counter() - start
    await check_queued(adapter, n)
    return {"value": n / seconds, "seconds": seconds}


async def w_enqueue_tasks(adapter: Adapter, w: dict[str, Any]) -> dict[str, Any]:
    n, deadline = w["n"], time.perf_counter() + w["timeout"]
    one = getattr(adapter, "enqueue_async", None)

    async def produce(seqs: range) -> None:
        for seq in seqs:
            await (one(seq) if one is not None else asyncio.to_thread(adapter.enqueue_one, seq))
            if seq & 63 == 0 and time.perf_counter() > deadline:
                raise Bound(f"a producer coroutine passed its bound at job {seq}")

    start = time.perf_counter()
    await asyncio.gather(*(produce(seqs) for seqs in _slices(n, w["producers"])))
    seconds = time.perf_counter() - start
    await check_queued(adapter, n)
    return {"value": n / seconds, "seconds": seconds}


async def w_enqueue_procs(adapter: Adapter, w: dict[str, Any]) -> dict[str, Any]:
    n, parts = w["n"], w["producers"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    system = {
        "module": type(adapter).__module__,
        "variant": adapter.variant,
        "workdir": str(adapter.workdir),
        "timeout": w["timeout"],
    }
    procs: list[asyncio.subprocess.Process] = []
    spans: list[dict[str, Any]] = []
    try:
        for seqs in _slices(n, parts):
            job = {**system, "start": seqs.start, "stop": seqs.stop, "step": seqs.step}
            log = (adapter.workdir / f"producer{len(procs)}.log").open("ab")
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "benchmarks.peers.harness",
                    "--producer",
                    json.dumps(job),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    env=env,
                    cwd=os.getcwd(),
                )
            )
            log.close()
        for proc in procs:  # each has imported the system and connected
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), w["timeout"])
            if line.strip() != b"ready":
                raise RuntimeError(f"a producer process failed to start: {line!r}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        for proc in procs:
            out, _ = await asyncio.wait_for(proc.communicate(), w["timeout"] + 30)
            spans.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    failed = [s for s in spans if "error" in s]
    if failed:
        what = f"{len(failed)} producer process(es): {failed[0]['error']}"
        raise Bound(what) if failed[0].get("bound") else RuntimeError(what)
    seconds = max(s["end"] for s in spans) - min(s["start"] for s in spans)
    await check_queued(adapter, n)
    return {"value": n / seconds, "seconds": seconds, "producers": parts}


async def produce(job: dict[str, Any]) -> dict[str, Any]:
    """One producer process of `enqueue_procs`: connect, say ready, wait for the go, then
    enqueue its slice one job per call; its first call's start and last call's end."""
    url = os.environ["PEERS_URL"]
    module = importlib.import_module(job["module"])
    adapter: Adapter = module.Adapter(job["variant"], url, Path(job["workdir"]))
    await call(adapter.attach)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.to_thread(sys.stdin.readline)
    start = time.time()
    deadline = time.perf_counter() + job["timeout"]
    try:
        for i, seq in enumerate(range(job["start"], job["stop"], job["step"])):
            await call(adapter.enqueue_one, seq)
            if i & 63 == 0 and time.perf_counter() > deadline:
                raise Bound(f"a producer process passed its bound after {i + 1} jobs")
    finally:
        await call(adapter.teardown)
    return {"start": start, "end": time.time()}


async def prefill(adapter: Adapter, seqs: range, timeout: float) -> dict[str, Any]:
    """Queue `seqs` as fast as the system's API allows (untimed for the figure, bounded)."""
    start = time.perf_counter()
    deadline = start + timeout
    try:
        if adapter.batch_api:
            await batch_loop(adapter, seqs, 1000, deadline)
        else:
            await enqueue_loop(adapter, seqs, deadline)
    except Bound as exc:
        raise Bound(f"prefill: {exc} within {timeout:g}s") from None
    seconds = time.perf_counter() - start
    return {"prefill_seconds": seconds, "prefill_rate": len(seqs) / seconds}


async def wait_marks(adapter: Adapter, target: int, deadline: float, what: str) -> None:
    """Wait until `target` jobs have started (marks), the deadline passes or a worker dies."""
    directory = adapter.workdir / "marks"
    while marks.count(directory) < target:
        if not adapter.workers_alive():
            raise RuntimeError(f"{what}: a worker process exited\n{adapter.worker_log_tail()}")
        if time.time() > deadline:
            raise Bound(f"{what}: {marks.count(directory)} of {target} jobs started in time")
        await asyncio.sleep(POLL)


async def w_drain(adapter: Adapter, w: dict[str, Any]) -> dict[str, Any]:
    n = w["n"]
    result = await prefill(adapter, range(n), w["prefill_timeout"])
    await check_queued(adapter, n)
    start = time.time()
    adapter.start_workers(w["processes"])
    try:
        await wait_marks(adapter, n, start + w["timeout"], "drain")
    except Bound as exc:
        done = marks.count(adapter.workdir / "marks")
        raise Bound(str(exc), partial=done / (time.time() - start)) from None
    found = marks.read(adapter.workdir / "marks")
    stamps = [t for _, t in found]
    last, first = max(stamps), min(stamps)
    result.update(
        value=n / (last - start),
        steady=n / (last - first) if last > first else None,
        startup=first - start,
        duplicates=len(found) - len({s for s, _ in found}),
    )
    return result


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank on the sorted values."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def w_latency(adapter: Adapter, w: dict[str, Any]) -> dict[str, Any]:
    n, rate = w["n"], w["rate"]
    directory = adapter.workdir / "marks"
    pids = adapter.start_workers(w["processes"])
    started = time.time()
    for i in range(WARMUP):  # the workers are up, connected and have run a job each
        await call(adapter.enqueue_one, WARMUP_SEQ + i)
        await asyncio.sleep(0.1)
    await wait_marks(adapter, WARMUP, started + 90, "latency warm-up")
    ready = time.time() - started
    await asyncio.sleep(1.0)
    idle = memory(pids)
    enqueued: dict[int, float] = {}
    begin = time.perf_counter()
    for i in range(n):
        pause = begin + i / rate - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        enqueued[i] = time.time()
        await call(adapter.enqueue_one, i)
    offered = n / (time.perf_counter() - begin)
    await wait_marks(adapter, n + WARMUP, time.time() + w["timeout"], "latency")
    busy = memory(pids)
    starts: dict[int, float] = {}
    for seq, stamp in marks.read(directory):
        if seq in enqueued:
            starts.setdefault(seq, stamp)
    ms = [(starts[i] - enqueued[i]) * 1000 for i in range(n)]
    return {
        "value": percentile(ms, 50),
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "mean": statistics.fmean(ms),
        "max": max(ms),
        "offered_rate": offered,
        "ready_seconds": ready,
        "idle": idle,
        "busy": busy,
    }


def settle(url: str) -> dict[str, Any]:
    """`VACUUM (ANALYZE)` of a PostgreSQL database (what autovacuum does to a filled table
    within a minute): its seconds and the tables that now have statistics. Nothing on other
    storage."""
    if not url.startswith("postgresql"):
        return {}
    import psycopg

    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(b"VACUUM (ANALYZE)")
        seconds = time.perf_counter() - start
        rows = conn.execute(
            b"SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL"
        ).fetchall()
    return {"settle_seconds": seconds, "analyzed": sorted(str(r[0]) for r in rows)}


async def w_scale(adapter: Adapter, w: dict[str, Any]) -> dict[str, Any]:
    backlog, window = w["backlog"], w["window"]
    directory = adapter.workdir / "marks"
    result = await prefill(adapter, range(backlog), w["prefill_timeout"])
    await check_queued(adapter, backlog)
    result.update(await asyncio.to_thread(settle, adapter.url))
    runs: list[dict[str, float]] = []
    for _ in range(w["runs"]):
        before = marks.count(directory)
        start = time.time()
        adapter.start_workers(w["processes"])
        try:
            await wait_marks(adapter, before + window, start + w["timeout"], "scale")
        except Bound as exc:
            done = marks.count(directory) - before
            raise Bound(str(exc), partial=done / (time.time() - start)) from None
        finally:
            adapter.stop_workers()
        stamps = sorted(t for _, t in marks.read(directory) if t >= start)[:window]
        runs.append(
            {
                "steady": window / (stamps[-1] - stamps[0]),
                "from_start": window / (stamps[-1] - start),
            }
        )
    result.update(value=runs[0]["steady"], runs=runs)
    return result


WORKLOADS: dict[str, Callable[[Adapter, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "enqueue_one": w_enqueue_one,
    "enqueue_batch": w_enqueue_batch,
    "enqueue_threads": w_enqueue_threads,
    "enqueue_tasks": w_enqueue_tasks,
    "enqueue_procs": w_enqueue_procs,
    "drain": w_drain,
    "latency": w_latency,
    "scale": w_scale,
}


# -- main ---------------------------------------------------------------------------------


async def run(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    (workdir / "marks").mkdir()
    os.environ[marks.ENV] = str(workdir / "marks")
    with Storage(spec, workdir) as url:
        os.environ["PEERS_URL"] = url
        module = importlib.import_module(f"benchmarks.peers.adapters.{spec['module']}")
        adapter: Adapter = module.Adapter(spec["variant"], url, workdir)
        await call(adapter.setup)
        try:
            out = await WORKLOADS[spec["workload"]["kind"]](adapter, spec["workload"])
            out["settings"] = adapter.settings()
            out["versions"] = adapter.versions()
            out["worker"] = adapter.worker_note
            out["batch_api"] = adapter.batch_api
            return out
        finally:
            adapter.stop_workers()
            await call(adapter.teardown)


def producer_main(job: dict[str, Any]) -> int:
    """`--producer`: one producer process of `enqueue_procs`; prints its span as JSON."""
    try:
        out = asyncio.run(produce(job))
    except Bound as exc:
        out = {"error": str(exc), "bound": True}
    except Exception as exc:
        traceback.print_exc()
        out = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


def main(argv: list[str]) -> int:
    if argv[0] == "--producer":
        return producer_main(json.loads(argv[1]))
    spec = json.loads(argv[0])
    workdir = Path(tempfile.mkdtemp(prefix="peers-", dir=spec.get("tmpdir")))
    try:
        out = {"ok": True, **asyncio.run(run(spec, workdir))}
    except Bound as exc:
        out = {"ok": False, "error": "timeout", "detail": str(exc), "partial": exc.partial}
    except NotImplementedError:
        out = {"ok": False, "error": "n/a", "detail": "not supported by this system"}
    except Exception as exc:
        traceback.print_exc()
        out = {"ok": False, "error": "failed", "detail": f"{type(exc).__name__}: {exc}"}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
