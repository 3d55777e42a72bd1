"""Maintenance statements per second with N workers (and schedulers), before and after the
election of one maintainer per duty (`offload.runtime.leader`, issue 22 item 4).

For each backend, each worker count and each mode (`every`: `elect=False`, every process
on its own timers, as before the election; `elected`: the default), a fresh database gets N
worker processes (thread executor, default settings: rescue every 5 s) and S scheduler
processes (default settings), idle or kept busy by a producer. Each process counts the
storage operations it calls, at the backend's protocol boundary (every area method, one
statement or one short transaction each), and reports them twice a second; over a window
that starts once every process is up, the script prints per second:

- scans: rescue, sweep (its queue list and steps), stats roll-up, pruning: what the
  election is for; each reads or writes rows of jobs, events or stats;
- lease checks: the election's own statements (a primary-key read of one row while the
  lease is held by another; a renewal every third of the lease by the holder);
- other: claims, heartbeats, outcomes (the work itself, for scale).

    .venv/bin/python benchmarks/maintenance.py                        # 1, 8, 32 workers
    .venv/bin/python benchmarks/maintenance.py --workers 4 --seconds 10 --backend sqlite
    .venv/bin/python benchmarks/maintenance.py --schedulers workers --busy 200
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import offload  # noqa: E402
from offload.runtime.worker import Worker  # noqa: E402

#: Area methods that are maintenance scans (the duty the election gives to one process).
SCANS = {
    "claims.rescue",
    "queues.list",
    "sweep.shed",
    "sweep.readmit",
    "sweep.take",
    "stats.roll",
    "stats.prune",
    "jobs.prune",
    "events.prune",
    "schedules.prune_ticks",
    "workers.prune",
    "topics.prune",
}
#: The election's own statements.
CHECKS = {"leaders.elect", "leaders.read", "leaders.resign"}
AREAS = (
    "jobs",
    "claims",
    "schedules",
    "workers",
    "queues",
    "sweep",
    "events",
    "stats",
    "topics",
    "leaders",
)
REPORT_EVERY = 0.5
#: Seconds every process has to start (dozens of them on a loaded machine take minutes).
START_TIMEOUT = 600.0


# -- the processes -------------------------------------------------------------------


def count_calls(backend: Any, counts: Counter[str]) -> None:
    """Wrap every public method of every area of `backend` to count its calls."""
    for area_name in AREAS:
        area = getattr(backend, area_name)
        for name in dir(area):
            method = getattr(area, name)
            if name.startswith("_") or not callable(method) or isinstance(method, type):
                continue
            setattr(area, name, _counted(method, f"{area_name}.{name}", counts))


def _counted(method: Callable[..., Any], key: str, counts: Counter[str]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        counts[key] += 1
        return method(*args, **kwargs)

    return call


def child(role: str, url: str, out: str, elect: bool) -> None:
    """A worker or a scheduler that writes its call counts to `out` twice a second."""
    app = offload.App(url)

    @app.task(name="noop")
    def noop() -> None:
        return None

    counts: Counter[str] = Counter()
    count_calls(app.backend, counts)
    runner: Any
    if role == "worker":
        runner = Worker(app.backend, app.registry, executor="thread", concurrency=2, elect=elect)
    else:
        runner = app.scheduler(elect=elect)

    def report() -> None:
        while True:
            snapshot = {"at": time.monotonic(), "counts": dict(counts)}
            Path(out + ".tmp").write_text(json.dumps(snapshot))
            os.replace(out + ".tmp", out)
            time.sleep(REPORT_EVERY)

    threading.Thread(target=report, daemon=True).start()
    runner.run()


# -- the parent ----------------------------------------------------------------------


def read_counts(directory: Path) -> dict[str, Counter[str]]:
    found = {}
    for path in directory.glob("*.json"):
        try:
            found[path.stem] = Counter(json.loads(path.read_text())["counts"])
        except (OSError, ValueError):
            continue
    return found


def measure(
    url: str, workers: int, schedulers: int, elect: bool, seconds: float, busy: float
) -> dict[str, float]:
    """Per-second rates of scans, lease checks and other calls over the window."""
    directory = Path(tempfile.mkdtemp(prefix="maint-"))
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    processes = []
    roles = ["worker"] * workers + ["scheduler"] * schedulers
    for index, role in enumerate(roles):
        out = str(directory / f"{role}-{index}.json")
        command = [sys.executable, __file__, "--child", role, url, out, str(int(elect))]
        processes.append(subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL))
    stop = threading.Event()
    producer = threading.Thread(target=produce, args=(url, busy, stop), daemon=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while len(read_counts(directory)) < len(roles):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the processes did not all start within {START_TIMEOUT:g} s")
            time.sleep(0.2)
        if busy:
            producer.start()
        time.sleep(3.0)  # past start-up: the first elections and maintenance passes
        before = read_counts(directory)
        time.sleep(seconds)
        after = read_counts(directory)
    finally:
        stop.set()
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    delta: Counter[str] = Counter()
    for name, counts in after.items():
        delta.update(counts)
        delta.subtract(before.get(name, Counter()))
    rates = {
        "scans": sum(v for k, v in delta.items() if k in SCANS) / seconds,
        "rescues": delta["claims.rescue"] / seconds,
        "checks": sum(v for k, v in delta.items() if k in CHECKS) / seconds,
        "other": sum(v for k, v in delta.items() if k not in SCANS | CHECKS) / seconds,
    }
    return rates


def produce(url: str, rate: float, stop: threading.Event) -> None:
    """Enqueue `rate` noop jobs a second (in batches of a tenth of a second's worth)."""
    app = offload.App(url)

    @app.task(name="noop")
    def noop() -> None:
        return None

    batch = max(int(rate / 10), 1)
    while not stop.is_set():
        app.enqueue_many("noop", [offload.call()] * batch)
        stop.wait(0.1)
    app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--schedulers",
        default="1",
        help="scheduler processes, or 'workers' for one per worker (`offload worker "
        "--scheduler` on every host)",
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--busy", type=float, default=0.0, help="jobs enqueued per second")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    server = None
    print(
        f"# maintenance calls per second; schedulers: {args.schedulers}, "
        f"{args.seconds:g} s windows, busy {args.busy:g} jobs/s, load {os.getloadavg()[0]:.1f}"
    )
    print("| backend | workers | mode | scans/s | of which rescues/s | lease checks/s | other/s |")
    print("|---|---|---|---|---|---|---|")
    for backend in backends:
        for workers in args.workers:
            for elect in (False, True):
                if backend == "postgres":
                    if server is None:
                        from tests.pgserver import start_postgres

                        server = start_postgres()
                    from tests.pgserver.databases import fresh_database

                    url = fresh_database(server.url, f"maint_{os.getpid()}_{workers}_{elect:d}")
                else:
                    url = f"sqlite:///{tempfile.mkdtemp(prefix='maint-db-')}/jobs.db"
                app = offload.App(url)
                app.migrate()
                app.close()
                schedulers = workers if args.schedulers == "workers" else int(args.schedulers)
                rates = measure(url, workers, schedulers, elect, args.seconds, args.busy)
                mode = "elected" if elect else "every"
                print(
                    f"| {backend} | {workers} | {mode} | {rates['scans']:.2f} | "
                    f"{rates['rescues']:.2f} | {rates['checks']:.2f} | {rates['other']:.1f} |",
                    flush=True,
                )
    print(f"# load after: {os.getloadavg()[0]:.1f}")
    if server is not None:
        server.stop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1")
    else:
        sys.exit(main())
