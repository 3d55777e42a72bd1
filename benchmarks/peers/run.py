"""The orchestrator: starts the rig's Redis and PostgreSQL, runs every (system, workload)
point in its own harness process with the right interpreter, repeats, and prints the table.

    .venv/bin/python -m benchmarks.peers [--quick] [--systems a,b] [--repeat 3] [--json FILE]

Runs in offload's venv. See benchmarks/README.md ("offload and its peers").
"""

from __future__ import annotations

import argparse
import contextlib
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.peers import report
from benchmarks.peers.services import Postgres, Redis
from benchmarks.peers.systems import BY_KEY, SYSTEMS, WORKLOADS, System
from benchmarks.procinfo import cpu_model, load_average, memory_gb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PEERS_VENV = HERE / ".venv"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
REQUIREMENTS = HERE / "requirements.txt"


@dataclass(frozen=True)
class Sizes:
    enqueue: int  # jobs enqueued one per call
    batch: int  # jobs per batched-enqueue run
    drain: int  # jobs queued, then drained
    latency: int  # latency samples
    rate: float  # jobs/s offered in the latency run
    scale_small: int  # backlog of the small scale run (drained whole)
    scale_large: int  # backlog of the large scale run (the next scale_small jobs are timed)
    repeat: int
    # Bounds, seconds.
    t_enqueue: float
    t_drain: float  # draining (the prefill has t_prefill)
    t_prefill: float
    t_scale_prefill: float  # filling the large backlog
    t_window: float  # one timed window of a scale run


FULL = Sizes(20_000, 20_000, 20_000, 500, 50.0, 10_000, 1_000_000, 3,
             120, 100, 150, 300, 120)  # fmt: skip
QUICK = Sizes(500, 2_000, 1_000, 50, 50.0, 5_000, 50_000, 1,
              20, 20, 20, 15, 6)  # fmt: skip


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- setup: the peers' venv and the server binaries ---------------------------------------


def setup(force: bool = False) -> None:
    """Create benchmarks/peers/.venv with the pinned peers, and install Redis/PostgreSQL."""
    missing = [b for b in ("redis-server",) if shutil.which(b) is None]
    from tests.pgserver import find_pg_bindir

    try:
        find_pg_bindir()
    except RuntimeError:
        missing.append("postgresql")
    if missing:
        if os.geteuid() != 0:
            raise SystemExit(f"missing {missing}: apt-get install redis-server postgresql")
        log(f"installing {missing} with apt-get")
        subprocess.run(["apt-get", "update", "-q"], check=True)
        packages = ["redis-server" if m == "redis-server" else "postgresql" for m in missing]
        subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True)
    if PEERS_PYTHON.exists() and not force:
        return
    log(f"creating {PEERS_VENV} (python3 -m venv + pip install -r {REQUIREMENTS.name})")
    base = shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
    pip = [str(PEERS_PYTHON), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)]
    subprocess.run(pip, check=True)


# -- one point: one harness process -------------------------------------------------------


class Runner:
    def __init__(self, redis: Redis, pg: Postgres, sizes: Sizes, logdir: Path) -> None:
        self.redis = redis
        self.pg = pg
        self.sizes = sizes
        self.logdir = logdir
        self.aof = ""
        self.count = 0

    def point(self, system: System, workload: dict[str, Any]) -> dict[str, Any]:
        """Run one workload on one system in a fresh harness process; return its result."""
        if system.storage == "redis" and system.aof != self.aof:
            self.redis.set_appendfsync(system.aof)
            self.aof = system.aof
        spec = {
            "module": system.module,
            "variant": system.variant,
            "storage": system.storage,
            "redis_url": self.redis.url,
            "pg_url": self.pg.url,
            "workload": workload,
        }
        python = sys.executable if system.venv == "offload" else str(PEERS_PYTHON)
        env = dict(os.environ)
        paths = (system.src, str(ROOT), env.get("PYTHONPATH"))
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        self.count += 1
        name = f"{self.count:04d}-{system.key.replace(':', '_')}-{workload['kind']}.log"
        bound = workload["bound"]
        started = time.monotonic()
        with (self.logdir / name).open("w+") as err:
            proc = subprocess.Popen(
                [python, "-m", "benchmarks.peers.harness", json.dumps(spec)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,  # its own group: the workers it starts die with it
            )
            try:
                out, _ = proc.communicate(timeout=bound + 60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                return {"ok": False, "error": "timeout", "detail": f"killed after {bound + 60:g}s"}
            finally:
                with contextlib.suppress(ProcessLookupError):  # any worker left behind
                    os.killpg(proc.pid, signal.SIGKILL)
        lines = out.strip().splitlines()
        try:
            result: dict[str, Any] = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            result = {"ok": False, "error": "failed", "detail": f"exit {proc.returncode}"}
        result["wall"] = time.monotonic() - started
        if not result["ok"]:
            result["log"] = str(self.logdir / name)
        return result


#: Concurrent producers, one job per call: the workload and how many (threads and coroutines
#: of one process; processes of their own).
PRODUCERS = {
    "threads32": ("enqueue_threads", 32),
    "async500": ("enqueue_tasks", 500),
    "procs8": ("enqueue_procs", 8),
}


def workload_spec(kind: str, s: Sizes) -> dict[str, Any]:
    if kind == "enqueue_one":
        return {"kind": kind, "n": s.enqueue, "timeout": s.t_enqueue, "bound": s.t_enqueue}
    if kind in PRODUCERS:
        work = {"kind": PRODUCERS[kind][0], "n": s.enqueue, "producers": PRODUCERS[kind][1]}
        return {**work, "timeout": s.t_enqueue, "bound": s.t_enqueue}
    if kind in ("batch100", "batch1000"):
        b = int(kind.removeprefix("batch"))
        spec = {"kind": "enqueue_batch", "n": s.batch, "batch": b, "timeout": s.t_enqueue}
        return {**spec, "bound": s.t_enqueue}
    if kind == "drain":
        return {
            "kind": "drain",
            "n": s.drain,
            "processes": 2,
            "timeout": s.t_drain,
            "prefill_timeout": s.t_prefill,
            "bound": s.t_drain + s.t_prefill,
        }
    if kind == "latency":
        t = s.latency / s.rate + 60
        return {
            "kind": kind,
            "n": s.latency,
            "rate": s.rate,
            "processes": 2,
            "timeout": 60,
            "bound": t + 90,
        }
    raise ValueError(kind)


def scale_spec(backlog: int, s: Sizes, runs: int, prefill: float) -> dict[str, Any]:
    return {
        "kind": "scale",
        "backlog": backlog,
        "window": s.scale_small,
        "runs": runs,
        "processes": 2,
        "timeout": s.t_window,
        "prefill_timeout": prefill,
        "bound": prefill + runs * (s.t_window + 15),
    }


def median_of(results: list[dict[str, Any]], key: str = "value") -> float | None:
    values = [r[key] for r in results if r.get("ok") and r.get(key)]
    return statistics.median(values) if values else None


def scale_prediction(system: System, points: dict[str, list[dict[str, Any]]], s: Sizes) -> str:
    """'' if the large scale run should fit its bounds, else why it is skipped. The rates come
    from the drain runs, or where the run left the drain out from the small scale runs (their
    own prefill and window); with neither yet, the small run goes ahead within its bounds."""
    source = "drain" if "drain" in points else "scale_small"
    if source not in points:
        return ""
    prefill_rate = median_of(points[source], "prefill_rate")
    drain_rate = median_of(points[source], "steady" if source == "drain" else "value")
    if prefill_rate is None or drain_rate is None:
        what = "drain" if source == "drain" else "small scale run"
        return f"skipped: its {what} did not finish within its bound"
    fill = s.scale_large / prefill_rate
    window = s.scale_small / drain_rate
    if fill > s.t_scale_prefill or window > s.t_window:
        return (
            f"skipped: predicted {fill:,.0f} s to queue {s.scale_large:,} "
            f"(bound {s.t_scale_prefill:g}) and {window:,.0f} s per window "
            f"(bound {s.t_window:g})"
        )
    return ""


def base_row(system: System, rev: str, src: str = "") -> System:
    """`system` (an offload row) as of git revision `rev`, imported from `src`."""
    return replace(
        system,
        key=system.key + "@base",
        label=f"{system.label} at {rev}",
        src=src,
        workloads=tuple(k for k in system.workloads if k != "scale"),
        reference=system.key,
    )


def base_systems(rev: str, offload_rows: list[System]) -> list[System]:
    """Copies of the offload rows that import offload as of `rev` (exported from git)."""
    export = Path(tempfile.mkdtemp(prefix="peers-base-"))
    archive = subprocess.run(
        ["git", "archive", rev, "src"], cwd=ROOT, capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SystemExit(f"--base {rev}: git archive failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(export)], input=archive.stdout, check=True)
    return [base_row(s, rev, str(export / "src")) for s in offload_rows]


def saved_systems(saved: dict[str, Any]) -> list[System]:
    """The rows of a saved run, --base rows included."""
    found = []
    for key in saved["points"]:
        if key in BY_KEY:
            found.append(BY_KEY[key])
        elif key.endswith("@base") and key.removesuffix("@base") in BY_KEY:
            found.append(base_row(BY_KEY[key.removesuffix("@base")], saved.get("base", "?")))
    return found


# -- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers",
        description="offload beside Celery, RQ, Dramatiq, arq, Huey, procrastinate and "
        "pgqueuer: the same workloads, one table (see benchmarks/README.md)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 run (~3 min, CI)")
    parser.add_argument(
        "--systems",
        help="comma-separated rows (default: all): " + ",".join(s.key for s in SYSTEMS),
    )
    parser.add_argument("--repeat", type=int, help="runs per point (default 3; --quick 1)")
    parser.add_argument(
        "--workloads",
        help="comma-separated workloads to run on the rows that have them (default: all): "
        + ",".join(WORKLOADS),
    )
    parser.add_argument("--no-scale", action="store_true", help="skip the scale workload")
    parser.add_argument("--json", metavar="FILE", help="raw results (default peers/results*.json)")
    parser.add_argument("--setup", action="store_true", help="(re)create the peers' venv, exit")
    parser.add_argument("--render", metavar="FILE", help="print the table of a saved --json run")
    parser.add_argument(
        "--base",
        metavar="REV",
        help="also run offload as of git revision REV (rows offload-...@base, no scale run): "
        "before/after ratios from one run",
    )
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.workloads is not None:
        args.workloads = args.workloads.split(",")
        unknown = [w for w in args.workloads if w not in WORKLOADS]
        if unknown:
            parser.error(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}")
    return args


def selected(system: System, workloads: list[str] | None, no_scale: bool) -> list[str]:
    """The workloads of `system` this run measures, in the row's order, the scale workload's
    small runs (`scale_small`) last (its large run follows every row's other workloads)."""
    kinds = [k for k in system.workloads if workloads is None or k in workloads]
    scale = ["scale_small"] if "scale" in kinds and not no_scale else []
    return [k for k in kinds if k != "scale"] + scale


def machine() -> dict[str, str]:
    model, mem = cpu_model(), memory_gb()
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    peers_python = subprocess.run(
        [str(PEERS_PYTHON), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "machine": f"{os.cpu_count()} cores ({model}), {mem} RAM, "
        f"{platform.system()} {platform.release()}",
        "python": f"offload venv {platform.python_version()}, peers venv {peers_python}; "
        f"SQLite {sqlite3.sqlite_version}",
        "repository": f"{ROOT} at {commit} (offload runs from the working tree: src/offload)",
        "tmp": tempfile.gettempdir(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.setup:
        setup(force=True)
        return 0
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        print(report.render(saved, saved_systems(saved)))
        return 0
    setup()
    base = QUICK if args.quick else FULL
    sizes = Sizes(**{**base.__dict__, "repeat": args.repeat or base.repeat})
    keys = args.systems.split(",") if args.systems else [s.key for s in SYSTEMS]
    unknown = [k for k in keys if k not in BY_KEY]
    if unknown:
        raise SystemExit(f"unknown system(s) {unknown}; known: {', '.join(BY_KEY)}")
    systems = [BY_KEY[k] for k in keys]
    if args.base:
        systems += base_systems(args.base, [s for s in systems if s.module == "offload"])
    default_json = HERE / ("results-quick.json" if args.quick else "results.json")
    json_path = Path(args.json) if args.json else default_json
    logdir = Path(tempfile.mkdtemp(prefix="peers-logs-"))
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the servers below are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    load_before = load_average()
    log(f"starting the rig's Redis and PostgreSQL; harness logs in {logdir}")
    redis = Redis()
    pg: Postgres | None = None
    try:
        pg = Postgres()
        runner = Runner(redis, pg, sizes, logdir)
        dump: dict[str, Any] = {
            "machine": machine(),
            "sizes": sizes.__dict__,
            "redis": redis.settings(),
            "postgres": pg.settings(),
            "points": {s.key: {} for s in systems},
            "notes": {},
            "base": args.base,
            "workloads": args.workloads,
        }
        points: dict[str, dict[str, list[dict[str, Any]]]] = dump["points"]
        for run in range(1, sizes.repeat + 1):
            for system in systems:
                for kind in selected(system, args.workloads, args.no_scale):
                    if kind == "scale_small":
                        # Only for the systems whose large run is predicted to fit its bounds.
                        why = scale_prediction(system, points[system.key], sizes)
                        if why:
                            dump["notes"][f"{system.key} scale"] = why
                            continue
                        spec = scale_spec(sizes.scale_small, sizes, 1, sizes.t_prefill)
                    else:
                        spec = workload_spec(kind, sizes)
                    result = runner.point(system, spec)
                    result["run"] = run
                    result["at"] = time.strftime("%H:%M:%S")
                    points[system.key].setdefault(kind, []).append(result)
                    log(f"[{run}/{sizes.repeat}] {system.key} {kind}: {report.brief(result)}")
        if not args.no_scale:
            for system in systems:
                if "scale_small" not in points[system.key]:
                    continue
                why = scale_prediction(system, points[system.key], sizes)
                if why:
                    dump["notes"][f"{system.key} scale"] = why
                    log(f"{system.key} scale_large: {why}")
                    continue
                spec = scale_spec(sizes.scale_large, sizes, sizes.repeat, sizes.t_scale_prefill)
                result = runner.point(system, spec)
                points[system.key]["scale_large"] = [result]
                log(f"{system.key} scale_large: {report.brief(result)}")
        dump["load_average"] = f"{load_before} before, {load_average()} after"
        dump["minutes"] = (time.monotonic() - started) / 60
        json_path.write_text(json.dumps(dump, indent=1) + "\n")
        print(report.render(dump, systems))
        log(f"raw results: {json_path}; took {dump['minutes']:.1f} min")
        return 0
    finally:
        if pg is not None:
            pg.stop()
        redis.stop()
