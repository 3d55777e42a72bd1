"""A worker process for the benchmarks; throughput.py starts it with $OFFLOAD_URL set.

    OFFLOAD_URL=sqlite:////tmp/b/jobs.db python -m benchmarks.runner drain \\
        --executor process --prefill 20000 [--instrument] [--profile drain.pstats]
    OFFLOAD_URL=... python -m benchmarks.runner serve --executor process

`drain` queues `--prefill` no-op jobs (untimed), then times a burst-mode worker from the
call of `Worker.run()` until the last outcome is committed (and until `run()` returns, which
adds closing the executor), and prints one JSON object on stdout.
`--task limited` drains a no-op task with a concurrency and a rate limit too high to bind.
The result includes the worker loop's turns (a busy loop shows as many more than claims).
`--instrument` adds per-operation call counts, rows and time (see `Meter`); `--profile FILE`
runs the worker under cProfile (the worker loop's thread only) and writes FILE.
`serve` runs an ordinary worker until SIGTERM (graceful stop) or `--max-seconds`.
`--log-level LEVEL` (and `--log-format text|json`) logs to stderr as `offload worker` does
(INFO: a line per job); without it the worker's log is not configured.
Run from the repository root, so that `benchmarks` is importable.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any, cast

import offload
from benchmarks import bench_app
from benchmarks.dbutil import epoch, is_sqlite, query
from offload.runtime.logfmt import LOG_FORMATS, configure
from offload.runtime.observer import JobObserver
from offload.runtime.worker import Worker

#: Backend operations the instrumented run counts and times.
OPS = {
    "job_claim": "claims.take",
    "job_finish": "claims.finish",
    "job_progress": "claims.progress",
    "job_heartbeat": "claims.heartbeat",
    "job_rescue": "claims.rescue",
    "job_release": "claims.release",
    "worker_heartbeat": "workers.heartbeat",
    "worker_register": "workers.register",
    "worker_unregister": "workers.unregister",
    "now": "now",
}
#: Operations whose second positional argument is the list of jobs they act on.
_BATCH_ARG = {"job_finish", "job_heartbeat", "job_release", "job_progress"}
#: Operations that only write when they touch a row (an empty write commits nothing to sync).
_ALWAYS_WRITES = {"worker_heartbeat", "worker_register", "worker_unregister"}


def _batch_of(args: tuple[Any, ...]) -> Sequence[Any]:
    """The list a batch operation acts on: in its params, or its second argument."""
    for field in ("outcomes", "leases"):
        if hasattr(args[0], field):
            found: Sequence[Any] = getattr(args[0], field)
            return found
    return cast(Sequence[Any], args[1])


class Meter:
    """Counts and times a worker's backend calls, SQL statements, loop turns and executor."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.transactions: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.statements: Counter[str] = Counter()
        # Time is booked only inside the steady window, from the first claim to the last
        # recorded outcome; start-up and shut-down are reported as wholes.
        self.run_start = 0.0
        self.first_claim: float | None = None
        self.last_finish = 0.0
        self._since_finish: defaultdict[str, float] = defaultdict(float)

    def attach(self, worker: Worker) -> None:
        backend: Any = worker.backend
        for name, path in OPS.items():
            *areas, method = path.split(".")
            owner = backend
            for area in areas:
                owner = getattr(owner, area)
            setattr(owner, method, self._timed_op(name, getattr(owner, method)))
        if is_sqlite(bench_app.URL):
            backend._conn().set_trace_callback(self._statement)
        else:
            self._count_psycopg()
        # The worker builds its executor(s) in run(): time what the loop calls on them.
        factory = next(n for n in ("_make_pool", "_make_executor") if hasattr(worker, n))
        make_executor = getattr(worker, factory)

        def make() -> Any:
            executor: Any = make_executor()
            for name in ("poll", "submit"):
                if hasattr(executor, name):
                    setattr(
                        executor, name, self._timed("executor_" + name, getattr(executor, name))
                    )
            return executor

        setattr(worker, factory, make)

        waiter: Any = worker._waiter  # the loop's select
        waiter.wait = self._timed("wait", waiter.wait)

    def _timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._book(name, start, time.perf_counter())

        return timed

    def _book(self, name: str, start: float, end: float) -> None:
        self.calls[name] += 1
        if self.first_claim is None:
            if name != "job_claim":
                return  # start-up
            self.first_claim = start
        self.seconds[name] += end - start
        self._since_finish[name] += end - start
        if name == "job_finish":
            self.last_finish = end
            self._since_finish.clear()

    def close(self, run_end: float) -> dict[str, float]:
        """Unbook what ran after the last outcome; return start-up, window and shut-down."""
        for name, spent in self._since_finish.items():
            self.seconds[name] -= spent
        first = self.run_start if self.first_claim is None else self.first_claim
        return {
            "startup": first - self.run_start,
            "window": self.last_finish - first,
            "shutdown": run_end - self.last_finish,
        }

    def _timed_op(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            self._book(name, start, time.perf_counter())
            if name in _BATCH_ARG:
                rows = len(_batch_of(args))
                if rows == 0:
                    return result  # returned before opening a transaction
            elif name == "job_claim":
                rows = len(result.jobs)
            elif name == "job_rescue":
                rows = len(result)
            else:
                rows = 0
            self.transactions[name] += 1
            self.rows[name] += rows
            if name in _ALWAYS_WRITES or (rows and name != "now"):
                self.writes[name] += 1
            return result

        return timed

    def _statement(self, sql: str) -> None:
        self.statements[_verb(sql)] += 1

    def _count_psycopg(self) -> None:
        import psycopg

        original = psycopg.Cursor.execute
        meter = self

        def execute(cur: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            text = query.decode() if isinstance(query, bytes) else str(query)
            meter.statements[_verb(text)] += 1
            return original(cur, query, *args, **kwargs)

        psycopg.Cursor.execute = execute  # type: ignore[method-assign,assignment]

    def as_dict(self, run_end: float) -> dict[str, Any]:
        return {
            "phases": self.close(run_end),
            "calls": dict(self.calls),
            "transactions": dict(self.transactions),
            "rows": dict(self.rows),
            "writes": dict(self.writes),
            "seconds": dict(self.seconds),
            "statements": dict(self.statements),
        }


def _verb(sql: str) -> str:
    """The statement's kind: its first keyword (after any comment lines), upper-case."""
    for line in sql.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("--"):
            return stripped.split(None, 1)[0].upper()
    return "?"


class NoopHooks(offload.Middleware):
    """A middleware with job hooks that do nothing: what calling middleware costs a drain."""

    def job_started(self, started: offload.JobStarted) -> None:
        return None

    def job_ended(self, ended: offload.JobEnded) -> None:
        return None


def make_worker(
    executor: str, concurrency: int, *, burst: bool, observer: JobObserver | None = None
) -> Worker:
    return Worker(
        bench_app.app.backend,
        bench_app.app.registry,
        queues=["default"],
        concurrency=concurrency,
        executor=executor,
        app_path=bench_app.APP_PATH,
        burst=burst,
        install_signals=not burst,
        observer=observer,
        middleware=bench_app.app.middleware,
    )


def track_last_outcome(worker: Worker) -> list[float]:
    """A one-item list holding the perf_counter time the last job_finish call returned."""
    mark = [0.0]
    backend: Any = worker.backend
    job_finish = backend.claims.finish

    def finish(*args: Any, **kwargs: Any) -> Any:
        result = job_finish(*args, **kwargs)
        mark[0] = time.perf_counter()
        return result

    backend.claims.finish = finish
    return mark


def drain(args: argparse.Namespace) -> dict[str, Any]:
    app = bench_app.app
    app.migrate()
    calls: list[tuple[Any, ...]] = [()] * 1000
    left = args.prefill
    task = bench_app.anoop if args.executor == "async" else bench_app.noop
    if args.task == "limited":
        task = bench_app.limited_noop
    while left > 0:
        task.enqueue_many(calls[: min(left, 1000)])
        left -= min(left, 1000)
    if args.middleware == "noop":
        app.add_middleware(NoopHooks())
    metrics = server = None
    if args.metrics_port is not None:  # as `offload worker --metrics-port` does
        from offload.runtime.metrics import MetricsServer, WorkerMetrics

        metrics = WorkerMetrics()
        server = MetricsServer(metrics.registry, "127.0.0.1", args.metrics_port)
    worker = make_worker(args.executor, args.concurrency, burst=True, observer=metrics)
    meter = Meter() if args.instrument else None
    if meter is not None:
        meter.attach(worker)
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        worker.stop()

    last_outcome = track_last_outcome(worker)
    watchdog = threading.Timer(args.timeout, on_timeout)
    watchdog.daemon = True
    watchdog.start()
    cpu_start = time.process_time()  # this process: the worker loop and its threads
    start = time.perf_counter()
    if meter is not None:
        meter.run_start = start
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(worker.run)
        end = time.perf_counter()
        profiler.dump_stats(args.profile)
    else:
        worker.run()
        end = time.perf_counter()
    cpu = time.process_time() - cpu_start
    watchdog.cancel()
    if server is not None:
        server.close()
    url = bench_app.URL
    first_start, last_finish = query(
        url,
        f"SELECT min({epoch(url, 'started_at')}), max({epoch(url, 'finished_at')}) "
        "FROM offload_jobs WHERE state = 'succeeded'",
    )[0]
    counts = app.queue_counts().get("default", {})
    app.close()
    return {
        "executor": args.executor,
        "concurrency": args.concurrency,
        "seconds": (last_outcome[0] or end) - start,  # worker start to last outcome committed
        "run_seconds": end - start,  # ... to Worker.run() returning (executor closed)
        "cpu_seconds": cpu,  # CPU time of the worker's own process (not its children)
        "processed": worker.processed,
        "succeeded": counts.get("succeeded", 0),
        "counts": counts,
        "first_start": first_start,
        "last_finish": last_finish,
        "timed_out": timed_out.is_set(),
        "turns": worker.turns,
        "meter": None if meter is None else meter.as_dict(end),
    }


def serve(args: argparse.Namespace) -> None:
    bench_app.app.migrate()
    worker = make_worker(args.executor, args.concurrency, burst=False)
    watchdog = threading.Timer(args.max_seconds, worker.stop)  # an orphan must not live on
    watchdog.daemon = True
    watchdog.start()
    worker.run()
    watchdog.cancel()
    bench_app.app.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runner", description=__doc__)
    parser.add_argument("mode", choices=("drain", "serve"))
    parser.add_argument("--executor", choices=("process", "thread", "async"), default="process")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--prefill", type=int, default=0, help="jobs to queue first (drain)")
    parser.add_argument("--timeout", type=float, default=120.0, help="drain: stop after this")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="serve: stop after")
    parser.add_argument(
        "--task",
        choices=("noop", "limited"),
        default="noop",
        help="drain: the no-op task, or one with limits too high to bind",
    )
    parser.add_argument("--instrument", action="store_true", help="drain: count and time")
    parser.add_argument("--profile", metavar="FILE", help="drain: write cProfile stats here")
    parser.add_argument("--log-level", help="log to stderr at this level, as a worker does")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    parser.add_argument(
        "--metrics-port", type=int, help="drain: count metrics and serve them on this port"
    )
    parser.add_argument(
        "--middleware", choices=("noop",), help="drain: a middleware whose job hooks do nothing"
    )
    args = parser.parse_args(argv)
    if args.log_level:
        configure(args.log_level, args.log_format)
    if args.mode == "drain":
        result = drain(args)
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
