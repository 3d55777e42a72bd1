"""Two PostgreSQL clusters against one, in the same run (docs/sharding.md).

Three variants take turns each round, on fresh databases:

- `one`: a plain App on cluster A (the single-cluster path, no router);
- `one-routed`: an App given `shards` with cluster A alone (what the router costs);
- `two`: an App over clusters A and B, queue q1 on B and q0 on A.

Each variant: `--enqueue` single-call enqueues timed in this process (alternating queues),
then `--jobs` more no-op jobs (half per queue) queued with `enqueue_many` (not timed), and
all of them drained by `--workers` burst worker processes (thread executor, `--concurrency`
slots each, serving both queues), timed inside them from the first one's start of work to
the last one's end (process start-up left out); every job is checked to have succeeded,
and per job are counted the transactions the drain committed in every shard's database
(`pg_stat_database`: claims, outcomes, heartbeats, and the claims that found nothing), the
CPU time of both servers' processes (/proc) and the workers' own CPU time: the figures that
project to separate machines, where each cluster has cores of its own.
Then `--moves` moves of a queue back and forth between the clusters while `--producers`
threads enqueue into it: each move's wall time, and the slowest enqueue before and during
the moves (a move holds the old shard's inserts for one short transaction).
Both clusters are throwaway servers (`tests.pgserver`) on this machine, sharing its cores
and disk: the figures measure the router and a second database's share of the same
machine, not two machines. Prints each run, the medians, and the per-round ratios.

    .venv/bin/python benchmarks/shards.py [--rounds 3] [--jobs 20000] [--workers 2] [--moves 20]
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import statistics
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(ROOT))

from tests.pgserver import PostgresServer, drop_database, fresh_database  # noqa: E402

import offload  # noqa: E402
from benchmarks.procinfo import load_average, tree_cpu_seconds  # noqa: E402
from benchmarks.throughput import log  # noqa: E402
from offload.task import Call  # noqa: E402

VARIANTS = ("one", "one-routed", "two")
QUEUES = ("q0", "q1")


def build(variant: str, urls: Mapping[str, str]) -> offload.App:
    """The variant's App with a no-op task on each queue."""
    if variant == "one":
        app = offload.App(urls["a"])
    elif variant == "one-routed":
        app = offload.App(shards={"a": urls["a"]})
    else:
        app = offload.App(shards=dict(urls), shard_map={"b": ["q1"]})
    for queue in QUEUES:
        app.task(name=f"noop_{queue}", queue=queue)(_noop)
    return app


def _noop() -> None:
    return None


def _work(variant: str, urls: dict[str, str], concurrency: int, times: Any) -> None:
    """One burst worker process serving both queues; puts (start, end) of its work."""
    app = build(variant, urls)
    worker = app.worker(queues=list(QUEUES), burst=True, concurrency=concurrency, executor="thread")
    start, cpu = time.time(), time.process_time()
    worker.run()
    times.put((start, time.time(), time.process_time() - cpu))
    app.close()


def commits(urls: Mapping[str, str]) -> int:
    """Transactions committed so far in the variant's databases (every shard's)."""
    import psycopg

    total = 0
    for url in urls.values():
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
            total += int(row[0]) if row else 0
    return total


def measure(
    variant: str, urls: dict[str, str], servers: list[int], args: argparse.Namespace
) -> tuple[float, ...]:
    """Of one variant on fresh databases: enqueues per second, drained jobs per second, and
    the drain's transactions, database CPU (microseconds, every server's processes) and
    workers' CPU (microseconds) per job."""
    app = build(variant, urls)
    app.migrate()
    names = [f"noop_{queue}" for queue in QUEUES]
    started = time.perf_counter()
    for n in range(args.enqueue):
        app.enqueue(names[n % 2])
    enqueue_rate = args.enqueue / (time.perf_counter() - started)
    for name in names:
        for start in range(0, args.jobs // 2, 1000):
            app.enqueue_many(name, [Call() for _ in range(min(1000, args.jobs // 2 - start))])
    context = multiprocessing.get_context("spawn")
    times = context.Queue()
    workers = [
        context.Process(target=_work, args=(variant, urls, args.concurrency, times))
        for _ in range(args.workers)
    ]
    time.sleep(1.5)  # this process's statistics reach the server once idle for a second
    before = commits(urls)
    db_cpu = sum(tree_cpu_seconds(pid) for pid in servers)
    for process in workers:
        process.start()
    spans = [times.get(timeout=600) for _ in workers]
    for process in workers:
        process.join()
    db_cpu = sum(tree_cpu_seconds(pid) for pid in servers) - db_cpu
    # The timed enqueues' jobs are drained too.
    expected = args.jobs // 2 * 2 + args.enqueue
    drain_rate = expected / (max(span[1] for span in spans) - min(span[0] for span in spans))
    worker_cpu = sum(span[2] for span in spans)
    per_job = (commits(urls) - before) / expected  # the workers' sessions ended: counted
    counts = app.queue_counts()
    done = sum(counts.get(queue, {}).get("succeeded", 0) for queue in QUEUES)
    if done != expected:
        raise SystemExit(f"{variant}: {done} jobs succeeded, expected {expected}: {counts}")
    app.close()
    micro = 1e6 / expected
    return enqueue_rate, drain_rate, per_job, db_cpu * micro, worker_cpu * micro


def moves(urls: dict[str, str], count: int, producers: int) -> dict[str, float]:
    """`count` moves of q1 between the clusters (each the other way) while `producers`
    threads enqueue into it one job per call: each move's wall time, and the producers'
    slowest enqueue before the moves and during them; every acknowledged id is checked
    to be stored on the shard its id names (none lost)."""
    app = build("two", urls)
    app.migrate()
    stop = threading.Event()
    samples: list[tuple[float, float]] = []  # (start, seconds) of each enqueue
    ids: list[int] = []

    def produce() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            handle = app.enqueue("noop_q1")
            samples.append((start, time.perf_counter() - start))
            ids.append(handle.id)

    threads = [threading.Thread(target=produce) for _ in range(producers)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    began = time.perf_counter()
    took = []
    for n in range(count):
        at = time.perf_counter()
        app.move_queue("q1", "a" if n % 2 == 0 else "b")
        took.append(time.perf_counter() - at)
        time.sleep(0.2)
    ended = time.perf_counter()
    stop.set()
    for thread in threads:
        thread.join()
    stored = sum(app.queue_counts().get("q1", {}).values())
    if stored != len(ids) or len(set(ids)) != len(ids):
        raise SystemExit(f"moves: {len(ids)} acknowledged, {stored} stored")
    for job_id in ids[:: max(1, len(ids) // 200)]:
        app.job(job_id).job()  # found on the shard its id names
    app.close()
    before = [seconds for start, seconds in samples if start < began]
    during = [seconds for start, seconds in samples if began <= start < ended]
    return {
        "move median ms": statistics.median(took) * 1000,
        "move max ms": max(took) * 1000,
        "enqueue max ms before": max(before) * 1000,
        "enqueue max ms during": max(during) * 1000,
        "enqueues": float(len(ids)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--enqueue", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--durable", action="store_true", help="clusters whose commits wait for their WAL write"
    )
    parser.add_argument("--moves", type=int, default=20, help="moves timed under enqueue load")
    parser.add_argument("--producers", type=int, default=4, help="threads enqueuing meanwhile")
    args = parser.parse_args()
    from tests.pgserver import start_postgres

    # A SIGTERM unwinds like an error, so the servers below are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print(f"load average before: {load_average()}")
    servers: list[PostgresServer] = []
    try:
        servers = [start_postgres(durable_commits=args.durable) for _ in range(2)]
        figures: dict[str, list[tuple[float, ...]]] = {v: [] for v in VARIANTS}
        postmasters = [postmaster(server) for server in servers]
        for n in range(args.rounds):
            for variant in VARIANTS:
                name = f"offload_shards_{n}_{variant.replace('-', '_')}"
                urls = {"a": fresh_database(servers[0].url, name)}
                if variant == "two":
                    urls["b"] = fresh_database(servers[1].url, name)
                try:
                    figures[variant].append(measure(variant, urls, postmasters, args))
                finally:
                    drop_database(servers[0].url, name)
                    if "b" in urls:
                        drop_database(servers[1].url, name)
                enqueue, drain, per_job, db_us, worker_us = figures[variant][-1]
                log(
                    f"round {n + 1} {variant}: enqueue {enqueue:,.0f}/s, drain {drain:,.0f}/s, "
                    f"per job: {per_job:.3f} transactions, database CPU {db_us:.0f} us, "
                    f"workers' CPU {worker_us:.0f} us"
                )
        moved: dict[str, float] = {}
        if args.moves:
            name = "offload_shards_moves"
            urls = {"a": fresh_database(servers[0].url, name)}
            urls["b"] = fresh_database(servers[1].url, name)
            try:
                moved = moves(urls, args.moves, args.producers)
            finally:
                drop_database(servers[0].url, name)
                drop_database(servers[1].url, name)
    finally:
        for server in servers:
            server.stop()
        print(f"load average after: {load_average()}")
    report(figures, args)
    if moved:
        print(
            f"\n{args.moves} moves of a queue between the clusters while {args.producers} "
            f"threads enqueue into it ({moved['enqueues']:,.0f} jobs, none lost): a move takes "
            f"{moved['move median ms']:.1f} ms (median, max {moved['move max ms']:.1f}); the "
            f"slowest enqueue {moved['enqueue max ms before']:.1f} ms before the moves, "
            f"{moved['enqueue max ms during']:.1f} ms during them"
        )
    return 0


def postmaster(server: PostgresServer) -> int:
    """The server's postmaster pid (first line of its postmaster.pid)."""
    assert server.data_dir is not None, "a server this script started"
    return int((server.data_dir / "postmaster.pid").read_text().split()[0])


def report(figures: dict[str, list[tuple[float, ...]]], args: argparse.Namespace) -> None:
    durable = "commits wait for the WAL write" if args.durable else "fsync off (test servers)"
    print(
        f"\n{args.jobs:,} no-op jobs drained by {args.workers} worker processes x "
        f"{args.concurrency} threads; {args.enqueue:,} single enqueues; {args.rounds} rounds; "
        f"{durable}\n"
    )
    print(
        "| variant | enqueue 1/call (jobs/s) | drain (jobs/s) | drain: transactions per job "
        "| database CPU per job (us) | workers' CPU per job (us) |"
    )
    print("|---|---|---|---|---|---|")
    formats = (",.0f", ",.0f", ".3f", ".0f", ".0f")
    for variant, runs in figures.items():
        cells = []
        for i, form in enumerate(formats):
            values = [run[i] for run in runs]
            low, mid, high = min(values), statistics.median(values), max(values)
            cells.append(f"{mid:{form}} ({low:{form}}-{high:{form}})")
        print(f"| {variant} | " + " | ".join(cells) + " |")
    base = figures["one"]
    for variant in VARIANTS[1:]:
        for index, what in ((0, "enqueue"), (1, "drain")):
            per_round = [v[index] / b[index] for v, b in zip(figures[variant], base, strict=True)]
            print(
                f"{variant} / one, {what}: median {statistics.median(per_round):.3f} "
                f"(min {min(per_round):.3f}, max {max(per_round):.3f})"
            )


if __name__ == "__main__":
    sys.exit(main())
