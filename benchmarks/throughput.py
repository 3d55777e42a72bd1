"""offload throughput, start latency and worker footprint on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/throughput.py [--backend sqlite|postgres|both] [--jobs N]
        [--repeat R] [--pg-url URL] [--quick] [--analyze] [--json FILE]

Every figure is the median of R runs (default 3) with the min-max spread; every run uses a
fresh SQLite file in a temporary directory or a fresh PostgreSQL database. Without --pg-url a
throwaway PostgreSQL server is started (tests.pgserver; it runs with fsync=off). Workers run
in their own processes (benchmarks/runner.py). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, Protocol, cast

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import offload  # noqa: E402
from benchmarks.dbutil import epoch, query  # noqa: E402
from benchmarks.procinfo import (  # noqa: E402
    cpu_model,
    descendants,
    kb,
    load_average,
    memory_gb,
    ppids,
)

CONCURRENCY = 2
LATENCY_RATE = 50.0  # jobs/s offered to the idle worker
BATCHES = (100, 1000)
MB = 1024.0  # /proc reports kB


class Aborted(Exception):
    """A run did not finish within its time bound (or its worker failed)."""


@dataclass(frozen=True)
class Sizes:
    single: int  # jobs enqueued one per call; also the raw INSERT count
    drain: int  # jobs drained per run; also the jobs per enqueue_many run
    latency: int  # latency samples
    repeat: int
    timeout: float  # bound on each run, seconds


# -- targets: where a run's fresh database comes from -----------------------------------


class Target(Protocol):
    key: str
    title: str

    def database(self) -> contextlib.AbstractContextManager[str]: ...

    def settings(self) -> list[tuple[str, str]]: ...

    def raw_insert(self, url: str, n: int, timeout: float) -> float: ...


class SqliteTarget:
    key = "sqlite"
    title = f"SQLite {sqlite3.sqlite_version}"

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        directory = tempfile.mkdtemp(prefix="offload-bench-")
        try:
            yield f"sqlite:///{directory}/jobs.db"
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def settings(self) -> list[tuple[str, str]]:
        with self.database() as url:
            app, _ = load_bench_app(url)
            try:
                app.migrate()
                conn = cast(Any, app.backend)._conn()
                journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
                sync = int(conn.execute("PRAGMA synchronous").fetchone()[0])
            finally:
                app.close()
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return [
            ("journal_mode", str(journal)),
            ("synchronous", f"{names.get(sync, '?')} ({sync})"),
            ("files in", tempfile.gettempdir()),
        ]

    def raw_insert(self, url: str, n: int, timeout: float) -> float:
        path = url.removeprefix("sqlite:///").rsplit("/", 1)[0] + "/raw.db"
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("CREATE TABLE raw (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            deadline = time.perf_counter() + timeout
            start = time.perf_counter()
            for i in range(n):
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO raw (v) VALUES (?)", ("x",))
                db.execute("COMMIT")
                if time.perf_counter() > deadline:
                    raise Aborted(f"raw insert: only {i + 1} of {n} rows in {timeout:g}s")
            return n / (time.perf_counter() - start)
        finally:
            db.close()


class PostgresTarget:
    key = "postgres"

    def __init__(self, server_url: str, how: str, data_dir: Path | None = None) -> None:
        self.server_url = server_url
        self.how = how
        #: The cluster's data directory when this process owns the server (its CPU is
        #: read from /proc through postmaster.pid), else None.
        self.data_dir = data_dir
        self._numbers = iter(range(1, 1_000_000))
        self.version = str(self._show("server_version"))
        self.title = f"PostgreSQL {self.version}"

    def _show(self, name: str) -> Any:
        return query(self.server_url, f"SHOW {name}")[0][0]

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        from tests.pgserver import fresh_database

        name = f"offload_bench_{os.getpid()}_{next(self._numbers)}"
        url = fresh_database(self.server_url, name)
        try:
            yield url
        finally:
            drop_database(self.server_url, name)

    def settings(self) -> list[tuple[str, str]]:
        from offload.backends import redact

        found = [(key, str(self._show(key))) for key in SHOWN_PG_SETTINGS]
        return [("server", f"{self.how}: {redact(self.server_url)}"), *found]

    def raw_insert(self, url: str, n: int, timeout: float) -> float:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE raw (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)"
            )
            deadline = time.perf_counter() + timeout
            start = time.perf_counter()
            for i in range(n):  # autocommit: one statement = one transaction = one round trip
                conn.execute("INSERT INTO raw (v) VALUES (%s)", ("x",))
                if time.perf_counter() > deadline:
                    raise Aborted(f"raw insert: only {i + 1} of {n} rows in {timeout:g}s")
            return n / (time.perf_counter() - start)


SHOWN_PG_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "full_page_writes",
    "commit_delay",
    "shared_buffers",
)


def drop_database(server_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql
    from tests.pgserver import database_url

    with psycopg.connect(database_url(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# -- the app under test ----------------------------------------------------------------


def load_bench_app(url: str) -> tuple[offload.App, offload.Task[[], None]]:
    """(Re)import benchmarks.bench_app with OFFLOAD_URL=url; return its app and no-op task."""
    os.environ["OFFLOAD_URL"] = url
    name = "benchmarks.bench_app"
    module = (
        importlib.reload(sys.modules[name])
        if name in sys.modules
        else importlib.import_module(name)
    )
    return cast(offload.App, module.app), cast("offload.Task[[], None]", module.noop)


def failure_sample(url: str) -> str:
    """The last error of one job that failed, to explain an aborted run."""
    with contextlib.suppress(Exception):
        rows = query(
            url,
            "SELECT id, state, errors FROM offload_jobs "
            "WHERE state IN ('dead', 'retrying', 'cancelled') ORDER BY id LIMIT 1",
        )
        if rows:
            job_id, state, errors = rows[0]
            text = errors if isinstance(errors, str) else json.dumps(errors)
            return f"; e.g. job {job_id} is {state}: {text[-300:]}"
    return ""


def expect_counts(app: offload.App, state: str, n: int) -> None:
    counts = app.queue_counts().get("default", {})
    if counts.get(state, 0) != n or sum(counts.values()) != n:
        raise Aborted(f"expected {n} {state} jobs, found {counts}")


# -- measurements (each gets a fresh database) -----------------------------------------


def bench_enqueue_one(url: str, n: int, timeout: float) -> float:
    app, noop = load_bench_app(url)
    try:
        app.migrate()
        deadline = time.perf_counter() + timeout
        start = time.perf_counter()
        for i in range(n):
            noop.enqueue()
            if time.perf_counter() > deadline:
                raise Aborted(f"enqueue one per call: only {i + 1} of {n} jobs in {timeout:g}s")
        rate = n / (time.perf_counter() - start)
        expect_counts(app, "available", n)
        return rate
    finally:
        app.close()


def bench_enqueue_many(url: str, n: int, batch: int, timeout: float) -> float:
    app, noop = load_bench_app(url)
    calls: list[tuple[Any, ...]] = [()] * batch
    try:
        app.migrate()
        deadline = time.perf_counter() + timeout
        start = time.perf_counter()
        done = 0
        while done < n:
            noop.enqueue_many(calls[: min(batch, n - done)])
            done += min(batch, n - done)
            if time.perf_counter() > deadline:
                raise Aborted(f"enqueue_many({batch}): only {done} of {n} jobs in {timeout:g}s")
        rate = n / (time.perf_counter() - start)
        expect_counts(app, "available", n)
        return rate
    finally:
        app.close()


def start_runner(url: str, args: list[str], stdout: IO[Any] | int, stderr: IO[Any]) -> Any:
    env = dict(os.environ, OFFLOAD_URL=url)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.runner", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        text=True,
        start_new_session=True,  # its own process group: we can end it and its children
    )


def kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def tail(stream: IO[str], lines: int = 15) -> str:
    stream.seek(0)
    return "\n".join(stream.read().splitlines()[-lines:])


def bench_drain(
    url: str,
    n: int,
    executor: str,
    timeout: float,
    *,
    instrument: bool = False,
    task: str = "noop",
) -> dict[str, Any]:
    args = ["drain", "--executor", executor, "--concurrency", str(CONCURRENCY), "--task", task]
    args += ["--prefill", str(n), "--timeout", str(timeout)]
    if instrument:
        args.append("--instrument")
    with tempfile.TemporaryFile("w+") as err:
        proc = start_runner(url, args, subprocess.PIPE, err)
        try:
            out, _ = proc.communicate(timeout=timeout + 120)  # + prefill and start-up
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise Aborted(f"drain ({executor}): worker process still running; killed") from None
        if proc.returncode != 0:
            raise Aborted(f"drain ({executor}): runner exit {proc.returncode}:\n{tail(err)}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if result["timed_out"] or result["succeeded"] != n:
        raise Aborted(
            f"drain ({executor}): {result['succeeded']} of {n} jobs succeeded in "
            f"{result['seconds']:.1f}s (bound {timeout:g}s); states {result['counts']}"
            + failure_sample(url)
        )
    return result


@dataclass
class Footprint:
    worker_rss: float  # MB
    worker_pss: float
    children_rss: float
    children_pss: float
    roles: list[str]


def footprint(pid: int) -> Footprint:
    """Memory of the worker process and of all its descendants (fork server, children...)."""
    parents = ppids()
    family = descendants(pid, parents)
    roles: list[str] = []
    rss = pss = 0.0
    for child in family:
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if parents.get(child) != pid:
                roles.append("job child")
            elif "resource_tracker" in cmdline:
                roles.append("resource tracker")
            elif "forkserver" in cmdline:
                roles.append("fork server")
            else:
                roles.append("other")
            rss += kb(f"/proc/{child}/status", "VmRSS")
            pss += kb(f"/proc/{child}/smaps_rollup", "Pss")
    return Footprint(
        kb(f"/proc/{pid}/status", "VmRSS") / MB,
        kb(f"/proc/{pid}/smaps_rollup", "Pss") / MB,
        rss / MB,
        pss / MB,
        sorted(roles),
    )


def count_job_children(pid: int) -> int:
    return footprint(pid).roles.count("job child")


def bench_latency(url: str, n: int, timeout: float) -> dict[str, Any]:
    """An idle worker in its own process; enqueue n jobs one at a time at LATENCY_RATE/s."""
    app, noop = load_bench_app(url)
    app.migrate()
    with tempfile.TemporaryFile("w+") as err:
        proc = start_runner(url, ["serve", "--concurrency", str(CONCURRENCY)], 0, err)
        try:
            deadline = time.monotonic() + 60
            while not (app.backend.workers.list() and count_job_children(proc.pid) >= CONCURRENCY):
                if proc.poll() is not None:
                    raise Aborted(f"worker exited with {proc.returncode}:\n{tail(err)}")
                if time.monotonic() > deadline:
                    raise Aborted("worker did not start within 60s")
                time.sleep(0.05)
            time.sleep(1.0)  # let it settle into its idle wait
            idle = footprint(proc.pid)
            start = time.perf_counter()
            for i in range(n):
                pause = start + i / LATENCY_RATE - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                noop.enqueue()
            deadline = time.monotonic() + timeout
            while app.queue_counts().get("default", {}).get("succeeded", 0) < n:
                if proc.poll() is not None:
                    raise Aborted(f"worker exited with {proc.returncode}:\n{tail(err)}")
                if time.monotonic() > deadline:
                    counts = app.queue_counts()
                    raise Aborted(
                        f"latency: jobs not done within {timeout:g}s: {counts}{failure_sample(url)}"
                    )
                time.sleep(0.1)
            busy = footprint(proc.pid)
            proc.send_signal(signal.SIGTERM)  # graceful stop
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                raise Aborted("worker did not stop within 30s of SIGTERM") from None
        finally:
            if proc.poll() is None:
                kill_group(proc)
            app.close()
    rows = query(
        url, f"SELECT {epoch(url, 'enqueued_at')}, {epoch(url, 'started_at')} FROM offload_jobs"
    )
    lat = sorted((float(s) - float(e)) * 1000.0 for e, s in rows)
    cuts = statistics.quantiles(lat, n=100, method="inclusive")
    return {
        "p50": cuts[49],
        "p99": cuts[98],
        "max": lat[-1],
        "mean": statistics.fmean(lat),
        "idle": idle,
        "busy": busy,
    }


# -- collecting results ----------------------------------------------------------------


@dataclass
class Row:
    key: str
    label: str
    unit: str
    fmt: str  # format spec for one value
    values: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    side: list[Any] = field(default_factory=list)  # per-run side figures, for the notes


def make_rows(sizes: Sizes) -> dict[str, Row]:
    rows = [
        Row("enq1", f"enqueue, 1 job per call ({sizes.single:,} jobs)", "jobs/s", ",.0f"),
        *(
            Row(
                f"enq{b}",
                f"enqueue_many, batches of {b:,} ({sizes.drain:,} jobs)",
                "jobs/s",
                ",.0f",
            )
            for b in BATCHES
        ),
        Row(
            "drain_process",
            f"drain, process executor x{CONCURRENCY} ({sizes.drain:,})",
            "jobs/s",
            ",.0f",
        ),
        Row(
            "drain_thread",
            f"drain, thread executor x{CONCURRENCY} ({sizes.drain:,})",
            "jobs/s",
            ",.0f",
        ),
        Row(
            "drain_async",
            f"drain, async executor x{CONCURRENCY} ({sizes.drain:,})",
            "jobs/s",
            ",.0f",
        ),
        Row(
            "p50",
            f"enqueue->start latency p50 ({sizes.latency} at {LATENCY_RATE:g}/s)",
            "ms",
            ".2f",
        ),
        Row("mean", "enqueue->start latency mean", "ms", ".2f"),
        Row("p99", "enqueue->start latency p99", "ms", ".2f"),
        Row("max", "enqueue->start latency max", "ms", ".2f"),
        Row("raw", "raw INSERT+COMMIT, 1 row per transaction", "rows/s", ",.0f"),
        Row("ratio", "enqueue 1/call as % of raw", "%", ".0f"),
        Row("rss", "worker RSS, idle (process executor)", "MB", ".1f"),
        Row("child_rss", "children RSS, idle, summed", "MB", ".1f"),
    ]
    return {row.key: row for row in rows}


def measure(target: Target, row: Row, fn: Callable[[str], float]) -> float | None:
    """One run of one figure on a fresh database; an abort or error is recorded, not raised."""
    try:
        with target.database() as url:
            value = fn(url)
    except Aborted as exc:
        row.errors.append(str(exc))
        log(f"  ABORTED {row.label}: {exc}")
        return None
    except Exception as exc:  # one broken run must not hide the other figures
        row.errors.append(f"{type(exc).__name__}: {exc}")
        log(f"  FAILED {row.label}:\n{traceback.format_exc()}")
        return None
    row.values.append(value)
    log(f"  {row.label}: {format(value, row.fmt)} {row.unit}")
    return value


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def drain_rate(url: str, sizes: Sizes, executor: str, row: Row) -> float:
    result = bench_drain(url, sizes.drain, executor, sizes.timeout)
    steady = sizes.drain / (result["last_finish"] - result["first_start"])
    row.side.append((steady, result["run_seconds"] - result["seconds"]))
    return float(sizes.drain / result["seconds"])


def latency_p50(url: str, sizes: Sizes, rows: dict[str, Row]) -> float:
    """Runs the latency measurement; files p99, max and the footprint under their rows."""
    found = bench_latency(url, sizes.latency, sizes.timeout)
    rows["mean"].values.append(found["mean"])
    rows["p99"].values.append(found["p99"])
    rows["max"].values.append(found["max"])
    idle: Footprint = found["idle"]
    busy: Footprint = found["busy"]
    rows["rss"].values.append(idle.worker_rss)
    rows["rss"].side.append(busy.worker_rss)
    rows["child_rss"].values.append(idle.children_rss)
    rows["child_rss"].side.append((busy.children_rss, idle.children_pss, idle.roles))
    return float(found["p50"])


def run_backend(target: Target, sizes: Sizes) -> dict[str, Row]:
    rows = make_rows(sizes)
    t = sizes.timeout
    for run in range(1, sizes.repeat + 1):
        log(f"[{target.key}] run {run}/{sizes.repeat}")
        one = measure(target, rows["enq1"], partial(bench_enqueue_one, n=sizes.single, timeout=t))
        raw = measure(target, rows["raw"], partial(target.raw_insert, n=sizes.single, timeout=t))
        if one is not None and raw is not None:
            rows["ratio"].values.append(100.0 * one / raw)
        for b in BATCHES:
            fn = partial(bench_enqueue_many, n=sizes.drain, batch=b, timeout=t)
            measure(target, rows[f"enq{b}"], fn)
        for executor in ("process", "thread", "async"):
            row = rows[f"drain_{executor}"]
            measure(target, row, partial(drain_rate, sizes=sizes, executor=executor, row=row))
        measure(target, rows["p50"], partial(latency_p50, sizes=sizes, rows=rows))
    finish_notes(rows, sqlite=target.key == "sqlite")
    return rows


def finish_notes(rows: dict[str, Row], *, sqlite: bool) -> None:
    """Turn the per-run side figures into one note per row."""
    for key in ("drain_process", "drain_thread"):
        if rows[key].side:
            steady = statistics.median(s[0] for s in rows[key].side)
            stop = statistics.median(s[1] for s in rows[key].side)
            rows[key].notes.append(
                f"steady {steady:,.0f}/s (DB stamps, first start to last finish); "
                f"run() returns {stop * 1000:.0f} ms after the last outcome"
            )
    if rows["rss"].side:
        after = statistics.median(rows["rss"].side)
        rows["rss"].notes.append(f"{after:.1f} MB after the latency jobs")
    if rows["child_rss"].side:
        side = rows["child_rss"].side
        after = statistics.median(s[0] for s in side)
        pss = statistics.median(s[1] for s in side)
        roles = ", ".join(side[0][2])
        rows["child_rss"].notes.append(
            f"{roles}; PSS {pss:.1f} MB; {after:.1f} MB after the latency jobs"
        )
    rows["p50"].notes.append("from the rows: started_at - enqueued_at (database clock)")
    if sqlite:  # julianday('now') advances in whole milliseconds
        rows["mean"].notes.append("SQLite stamps tick in 1 ms steps; the mean is not biased by it")


# -- output ----------------------------------------------------------------------------


def render(target: Target, settings: list[tuple[str, str]], rows: dict[str, Row]) -> Table:
    table = Table(
        title=f"offload on {target.title}",
        caption="  ".join(f"{k}={v}" for k, v in settings),
        caption_justify="left",
        title_justify="left",
    )
    table.add_column("measure")
    table.add_column("median", justify="right")
    table.add_column("min - max", justify="right")
    table.add_column("unit")
    table.add_column("notes")
    for row in rows.values():
        if row.values:
            median = format(statistics.median(row.values), row.fmt)
            spread = f"{format(min(row.values), row.fmt)} - {format(max(row.values), row.fmt)}"
        else:
            median, spread = "-", ""
        notes = list(row.notes)
        if row.errors:
            notes.append(f"{len(row.errors)} run(s) aborted: {row.errors[0].splitlines()[0]}")
        table.add_row(row.label, median, spread, row.unit, "; ".join(notes))
    return table


def machine_info(pg_versions: list[str]) -> list[str]:
    model, memory = cpu_model(), memory_gb()
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    psycopg_version = "not installed"
    with contextlib.suppress(ImportError):
        import psycopg

        psycopg_version = psycopg.__version__
    return [
        f"machine: {os.cpu_count()} cores ({model}), {memory} RAM, "
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"PostgreSQL {', '.join(pg_versions) or '-'}, psycopg {psycopg_version}",
        f"offload {offload.__version__} from {Path(offload.__file__).parent} "
        f"(repository at {commit}); load average {load_average()}",
    ]


# -- per-job analysis (--analyze) ------------------------------------------------------


def per_job_figures(result: dict[str, Any], n: int, postgres: bool) -> list[tuple[str, str]]:
    """(label, value) lines of one instrumented drain, mostly per job."""
    meter = result["meter"]
    calls, txns, rows = meter["calls"], meter["transactions"], meter["rows"]
    writes, secs, stmts = meter["writes"], meter["seconds"], meter["statements"]
    all_txns = sum(txns.values())
    empty_claims = txns.get("job_claim", 0) - writes.get("job_claim", 0)
    lines = [
        ("drain rate, jobs/s (instrumented)", f"{n / result['seconds']:,.0f}"),
        ("worker loop turns (select waits)", f"{calls.get('wait', 0) / n:.3f}"),
        ("transactions", f"{all_txns / n:.3f}"),
    ]
    for op in ("job_claim", "job_finish", "job_heartbeat", "worker_heartbeat", "job_rescue", "now"):
        lines.append((f"  {op}", f"{txns.get(op, 0) / n:.3f}"))
    lines += [
        (
            "jobs per claim (mean)",
            f"{rows.get('job_claim', 0) / max(txns.get('job_claim', 0), 1):.2f}",
        ),
        ("claims that found nothing (count)", f"{empty_claims}"),
        (
            "outcomes per finish (mean)",
            f"{rows.get('job_finish', 0) / max(txns.get('job_finish', 0), 1):.2f}",
        ),
        ("commits that write (each a disk sync)", f"{sum(writes.values()) / n:.3f}"),
        ("SQL statements sent", f"{sum(stmts.values()) / n:.3f}"),
        (
            "  by kind (>= 0.01 per job)",
            " ".join(f"{k}={v / n:.2f}" for k, v in sorted(stmts.items()) if v / n >= 0.01),
        ),
    ]
    if postgres:  # psycopg sends BEGIN and COMMIT as statements of their own
        lines.append(
            (
                "round trips (statements + BEGIN + COMMIT)",
                f"{(sum(stmts.values()) + 2 * all_txns) / n:.3f}",
            )
        )
    loop_parts = ("wait", "executor_poll", "executor_submit")
    db_other = sum(v for k, v in secs.items() if k not in (*loop_parts, "job_claim", "job_finish"))
    phases = meter["phases"]
    rest = phases["window"] - sum(secs.values())
    lines += [
        ("start-up: run() to first claim, ms", f"{phases['startup'] * 1000:.0f}"),
        ("shut-down: last outcome to return, ms", f"{phases['shutdown'] * 1000:.0f}"),
    ]
    for label, value in (
        ("steady window per job, us", phases["window"]),
        ("  in job_claim", secs.get("job_claim", 0.0)),
        ("  in job_finish", secs.get("job_finish", 0.0)),
        ("  in other backend calls", db_other),
        (
            "  in executor poll + submit",
            secs.get("executor_poll", 0.0) + secs.get("executor_submit", 0.0),
        ),
        ("  waiting in select (idle loop)", secs.get("wait", 0.0)),
        ("  rest of the loop (outcomes, bookkeeping)", rest),
    ):
        lines.append((label, f"{value / n * 1e6:.0f}"))
    return lines


def analyze(target: Target, sizes: Sizes) -> Table:
    """One instrumented drain per executor: where a job's time and database work go."""
    columns: dict[str, list[tuple[str, str]]] = {}
    for executor in ("process", "thread"):
        log(f"[{target.key}] instrumented drain, {executor} executor")
        try:
            with target.database() as url:
                result = bench_drain(url, sizes.drain, executor, sizes.timeout, instrument=True)
        except Aborted as exc:
            log(f"  ABORTED: {exc}")
            continue
        columns[executor] = per_job_figures(result, sizes.drain, target.key == "postgres")
    table = Table(
        title=f"where a drained job goes: {target.title}, {sizes.drain:,} jobs, instrumented run",
        title_justify="left",
    )
    table.add_column("per job")
    for executor in columns:
        table.add_column(f"{executor} x{CONCURRENCY}", justify="right")
    if not columns:
        table.add_column("")
        table.add_row("every instrumented run aborted; see the messages above", "")
        return table
    labels = [label for label, _ in next(iter(columns.values()))]
    for i, label in enumerate(labels):
        table.add_row(label, *(lines[i][1] for lines in columns.values()))
    return table


# -- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="offload throughput, latency and footprint (see benchmarks/README.md)"
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--jobs", type=int, help="jobs enqueued one per call (default 2000)")
    parser.add_argument("--drain-jobs", type=int, help="jobs per drain/batch run (default 20000)")
    parser.add_argument("--latency-jobs", type=int, help="latency samples (default 300)")
    parser.add_argument("--repeat", type=int, help="runs per figure (default 3)")
    parser.add_argument("--timeout", type=float, default=120.0, help="bound per run, seconds")
    parser.add_argument(
        "--pg-url",
        help="an existing PostgreSQL server (superuser); a database is created per run. "
        "Default: a throwaway server from tests.pgserver (fsync=off)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run (for CI)")
    parser.add_argument(
        "--analyze", action="store_true", help="also one instrumented drain per executor"
    )
    parser.add_argument("--json", metavar="FILE", help="also write every run's figures here")
    args = parser.parse_args(argv)
    for name in ("jobs", "drain_jobs", "latency_jobs", "repeat"):
        value = getattr(args, name)
        if value is not None and value < (2 if name == "latency_jobs" else 1):
            parser.error(f"--{name.replace('_', '-')} must be a positive number")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quick = args.quick
    sizes = Sizes(
        single=args.jobs or (200 if quick else 2000),
        drain=args.drain_jobs or (2000 if quick else 20000),
        latency=args.latency_jobs or (50 if quick else 300),
        repeat=args.repeat or (1 if quick else 3),
        timeout=args.timeout,
    )
    console = Console(width=max(shutil.get_terminal_size((160, 24)).columns, 150))
    server: Any = None
    targets: list[Target] = []
    try:
        if args.backend in ("sqlite", "both"):
            targets.append(SqliteTarget())
        if args.backend in ("postgres", "both"):
            if args.pg_url:
                targets.append(PostgresTarget(args.pg_url, "given by --pg-url"))
            else:
                from tests.pgserver import start_postgres

                log("starting a throwaway PostgreSQL server (tests.pgserver)")
                server = start_postgres()
                how = "throwaway (tests.pgserver)" if server.owned else "$OFFLOAD_TEST_POSTGRES_URL"
                targets.append(PostgresTarget(server.url, how))
        pg_versions = [t.version for t in targets if isinstance(t, PostgresTarget)]
        for line in machine_info(pg_versions):
            console.print(line, highlight=False)
        console.print(
            f"sizes: {sizes.single:,} single enqueues, {sizes.drain:,} jobs per batch/drain "
            f"run, {sizes.latency} latency samples, {sizes.repeat} run(s) each, "
            f"bound {sizes.timeout:g}s per run",
            highlight=False,
        )
        failed = False
        dump: dict[str, Any] = {"sizes": sizes.__dict__, "backends": {}}
        for target in targets:
            settings = target.settings()
            load_before = load_average()
            rows = run_backend(target, sizes)
            settings.append(("load average before/after", f"{load_before} / {load_average()}"))
            console.print()
            console.print(render(target, settings, rows))
            failed = failed or any(row.errors for row in rows.values())
            dump["backends"][target.key] = {
                "title": target.title,
                "settings": dict(settings),
                "figures": {k: {"values": r.values, "errors": r.errors} for k, r in rows.items()},
            }
            if args.analyze:
                console.print()
                console.print(analyze(target, sizes))
        if args.json:
            Path(args.json).write_text(json.dumps(dump, indent=2) + "\n")
        return 1 if failed else 0
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
