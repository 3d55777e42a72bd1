"""Drain throughput with 1, 2, 4, 8 worker hosts on one PostgreSQL, against the database's
raw claim limit measured in the same run (issue 22, item 2).

Hosts are network namespaces on a bridge (tests/hosts), each running its own `offload
worker` processes; a producer host enqueues. PostgreSQL is a throwaway cluster on the
bridge (durability off, as every throwaway server of the tests). For each host count:

* raw: one loop per host claiming `--batch` rows at a time (FOR UPDATE SKIP LOCKED) and
  marking them done, plain SQL, no offload code (tests/hosts/rawclaim.py); again with one
  ledger INSERT per row, for the database CPU the ledger adds to every offload run below
  (its rate is not comparable: one loop writes its rows one by one, where a worker's
  threads write theirs side by side);
* offload: the queue paused, `--jobs` no-op jobs enqueued from the producer host, the queue
  resumed; jobs/s from the database's stamps (first start to last finish). Every run is
  written by the task into a ledger with UNIQUE (job_id, attempt): the run fails unless
  each job ran exactly once. Connections to the jobs' database are sampled from
  pg_stat_activity every 50 ms; CPU seconds of the server's processes and of the workers
  are read from /proc, per job;
* limits: 3 keys of a task limited to 2 at once per key and 3 keys limited to 10 starts/s
  per key, on all the hosts: the most seen at once and in any second, per key.

    .venv/bin/python benchmarks/multihost.py [--hosts 1,2,4,8] [--jobs 20000]
        [--workers 1] [--concurrency 4] [--batch 20] [--bouncer transaction] [--pool 10]

Needs root (network namespaces).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `tests` importable
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from tests.hosts import ledger, rawclaim  # noqa: E402
from tests.hosts.cluster import Cluster, Connections  # noqa: E402

import offload  # noqa: E402

#: What the last job of a drain may take at most, in seconds.
TIMEOUT = 300.0


@dataclass
class Row:
    """One host count's figures."""

    hosts: int
    raw: float
    rate: float
    raw_cpu_ms: float
    raw_ledger_cpu_ms: float
    db_cpu_ms: float
    worker_cpu_ms: float
    commits_per_job: float
    per_claim: float
    per_write: float
    most_connections: int
    most_per_host: int
    most_at_once: int
    busiest_second: int
    load: str = ""


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _raw(
    cluster: Cluster, hosts: list[str], jobs: int, batch: int, with_ledger: bool
) -> tuple[float, float]:
    """jobs/s and database CPU ms per job of the bare claim-and-finish loops, one per host."""
    url = cluster.raw_url("raw")
    rawclaim.fill(url.replace(cluster.network.gateway, "127.0.0.1", 1), jobs)
    start = time.time() + 2.0  # every loop starts together, once all have connected
    argv = [sys.executable, "-m", "tests.hosts.rawclaim", url, str(batch), str(start)]
    if with_ledger:
        argv.append(url)
    cpu = cluster.database_cpu()
    loops = [
        subprocess.Popen(
            cluster.host(name).command(argv),
            cwd=ROOT,
            env=cluster.env(name),
            stdout=subprocess.PIPE,
        )
        for name in hosts
    ]
    done = sum(int(loop.communicate(timeout=TIMEOUT)[0]) for loop in loops)
    cpu = cluster.database_cpu() - cpu
    count, seconds = rawclaim.result(url.replace(cluster.network.gateway, "127.0.0.1", 1))
    if done != jobs or count != jobs:
        raise RuntimeError(f"raw loops did {done} rows ({count} done), not {jobs}")
    return jobs / seconds, 1000 * cpu / jobs


def _commits(cluster: Cluster) -> int:
    """Transactions committed in the jobs' database so far. A busy backend reports its
    counts at most once a second, so this waits that long first."""
    time.sleep(1.5)
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _drain_span(url: str, first: int) -> tuple[float, float, float]:
    """For the jobs from id `first` on: seconds from the first start to the last finish,
    and jobs per claim and per outcome write. A claim stamps its jobs' started_at, and a
    write their finished_at, with its transaction's clock: one distinct (worker, stamp)
    per claim or write."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at)), count(*),"
            " count(DISTINCT (worker, started_at)), count(DISTINCT (worker, finished_at))"
            " FROM offload_jobs WHERE id >= %s",
            (first,),
        ).fetchone()
    assert row is not None
    seconds, jobs, claims, writes = row
    return float(seconds), jobs / claims, jobs / writes


def _wait_done(cluster: Cluster, ids: list[int]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while cluster.states(ids) != {"succeeded": len(ids)}:
        cluster.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"not drained in {TIMEOUT}s: {cluster.states(ids)}")
        time.sleep(0.1)


def _offload(cluster: Cluster, hosts: list[str], args: argparse.Namespace) -> Row:
    cluster.use_database(f"offload_hosts_{len(hosts)}")
    for name in hosts:
        cluster.start_workers(name, args.workers, concurrency=args.concurrency)
    cluster.wait_registered(len(hosts) * args.workers)
    app = offload.App(cluster.url)
    app.pause_queue("default")
    ids = cluster.produce("work", args.jobs, 0)
    time.sleep(1.0)  # the workers settle after start-up before the clock starts
    stop, seen = threading.Event(), Connections()
    sampler = threading.Thread(target=cluster.sample_connections, args=(stop, seen))
    sampler.start()
    db_cpu, worker_cpu = cluster.database_cpu(), cluster.workers_cpu()
    commits = _commits(cluster)
    try:
        app.resume_queue("default")
        _wait_done(cluster, ids)
    finally:
        stop.set()
        sampler.join()
    db_cpu, worker_cpu = cluster.database_cpu() - db_cpu, cluster.workers_cpu() - worker_cpu
    commits = _commits(cluster) - commits
    seconds, per_claim, per_write = _drain_span(cluster.url, min(ids))
    rate = len(ids) / seconds
    runs = ledger.runs(cluster.ledger_url)
    if sorted(r.job_id for r in runs) != sorted(ids) or {r.attempt for r in runs} != {1}:
        raise RuntimeError(f"{len(hosts)} hosts: runs lost or doubled ({len(runs)} runs)")

    before = {r.job_id for r in runs}
    limited = cluster.produce("limits", 3, args.limited, 0.05)
    _wait_done(cluster, limited)
    new = [r for r in ledger.runs(cluster.ledger_url) if r.job_id not in before]
    peaks = ledger.most_at_once([r for r in new if r.finished is not None])
    paced = [r for r in (app.job(i).job() for i in limited) if r.task == "hosts.paced"]
    busiest = max(
        ledger.busiest_window(
            [j.started_at for j in paced if j.args[0] == key and j.started_at is not None],
            timedelta(seconds=1),
        )
        for key in ("key0", "key1", "key2")
    )
    app.close()
    for name in hosts:
        cluster.stop_workers(name)
    addresses = {cluster.host(name).address for name in hosts}
    per_host = [seen.most_by_address.get(a, 0) for a in addresses]
    return Row(
        hosts=len(hosts),
        raw=0.0,
        rate=rate,
        raw_cpu_ms=0.0,
        raw_ledger_cpu_ms=0.0,
        db_cpu_ms=1000 * db_cpu / len(ids),
        worker_cpu_ms=1000 * worker_cpu / len(ids),
        commits_per_job=commits / len(ids),
        per_claim=per_claim,
        per_write=per_write,
        most_connections=seen.most,
        most_per_host=max(per_host) if cluster.bouncer is None else 0,
        most_at_once=max(peaks.values()),
        busiest_second=busiest,
    )


def _load() -> str:
    """The 1-minute load average: other work on the machine moves every figure."""
    return Path("/proc/loadavg").read_text().split()[0]


def _settings(cluster: Cluster) -> str:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        shown = [
            f"{name}={conn.execute(f'SHOW {name}').fetchone()[0]}"  # type: ignore[index]
            for name in ("server_version", "fsync", "synchronous_commit", "max_connections")
        ]
    return ", ".join(shown)


def run(args: argparse.Namespace) -> list[Row]:
    counts = [int(n) for n in args.hosts.split(",")]
    names = [f"h{n}" for n in range(1, max(counts) + 1)]
    rows: list[Row] = []
    with Cluster(
        names,
        log_dir=Path(tempfile.mkdtemp(prefix="multihost-")),
        bouncer=args.bouncer,
        pool_size=args.pool,
    ) as cluster:
        _say(f"network {cluster.network.id}: {cluster.network.subnet}; {_settings(cluster)}")
        for count in counts:
            hosts = names[:count]
            raws, raw_ledgers = [], []
            for _ in range(args.rounds):
                _say(f"{count} hosts: raw loops")
                raws.append(_raw(cluster, hosts, args.jobs, args.batch, False))
                raw_ledgers.append(_raw(cluster, hosts, args.jobs, args.batch, True))
            rounds = []
            load = _load()
            for _ in range(args.rounds):
                _say(f"{count} hosts: offload drain of {args.jobs:,} jobs")
                rounds.append(_offload(cluster, hosts, args))
            row = sorted(rounds, key=lambda r: r.rate)[len(rounds) // 2]
            row.raw = statistics.median(r[0] for r in raws)
            row.raw_cpu_ms = statistics.median(r[1] for r in raws)
            row.raw_ledger_cpu_ms = statistics.median(r[1] for r in raw_ledgers)
            row.load = f"{load} -> {_load()}"
            rows.append(row)
            _say(str(row))
    return rows


def show(rows: list[Row], args: argparse.Namespace) -> None:
    via = f"PgBouncer ({args.bouncer} mode, pool {args.pool})" if args.bouncer else "direct"
    print(
        f"{args.jobs:,} no-op jobs per drain, {args.workers} worker(s) per host "
        f"(thread executor x{args.concurrency}), connections {via}; raw loops claim "
        f"{args.batch} rows per transaction; median of {args.rounds} round(s)"
    )
    print(
        f"machine: {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}"
    )
    print()
    print(
        "| hosts | raw claim jobs/s | offload jobs/s | offload / raw "
        "| DB CPU ms/job (raw, raw + ledger, offload + ledger) | worker CPU ms/job "
        "| transactions/job | jobs per claim, per outcome write "
        "| most connections (all, per host) | most at once per key (limit 2) "
        "| busiest second per key (limit 10) | load average |"
    )
    print("|---:|---:|---:|---:|---|---:|---:|---|---|---:|---:|---|")
    for r in rows:
        per_host = "-" if args.bouncer else str(r.most_per_host)
        print(
            f"| {r.hosts} | {r.raw:,.0f} | {r.rate:,.0f} | {r.rate / r.raw:.2f} "
            f"| {r.raw_cpu_ms:.3f}, {r.raw_ledger_cpu_ms:.3f}, {r.db_cpu_ms:.3f} "
            f"| {r.worker_cpu_ms:.3f} | {r.commits_per_job:.2f} "
            f"| {r.per_claim:.1f}, {r.per_write:.1f} "
            f"| {r.most_connections}, {per_host} "
            f"| {r.most_at_once} | {r.busiest_second} | {r.load} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", default="1,2,4,8")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes per host")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch", type=int, default=20, help="rows per raw claim")
    parser.add_argument("--limited", type=int, default=20, help="limited jobs per key")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--bouncer", choices=("transaction", "session"))
    parser.add_argument("--pool", type=int, default=10, help="PgBouncer's server connections")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C: the cluster's exit removes namespaces, processes, server.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    show(run(args), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
