"""Durable enqueues from several producer processes on PostgreSQL, one job per call: offload
of two trees (this one and `--base`) and the raw one-row autocommit INSERT, 1 and `--procs`
processes, interleaved in rounds (medians). Issue 20's "8 producer processes >= 3x raw's
single-client rate": it hangs on PostgreSQL's group commit, which a transaction that
NOTIFYs cannot share (its commit holds a database-wide lock across the WAL flush).

Each point gets a fresh database; each producer process imports its tree, connects and
enqueues one job first (untimed), then waits for the go: jobs/s from the first producer's
first timed call to the last one's last return, and jobs per WAL flush (pg_stat_wal's
wal_sync over the timed part: how many commits each flush carried, which moves far less
with the machine's load than jobs/s). The server is a private durable cluster (the peer
rig's, benchmarks/peers/services.py) unless `--url` names one with fsync on.

    .venv/bin/python benchmarks/procs_enqueue.py --base /tmp/base/src [--procs 8] [--n 400]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]


def producer(spec: dict[str, Any]) -> None:
    """One producer process: connect, one untimed call, 'ready', wait for 'go', enqueue."""
    n, url = spec["n"], spec["url"]
    if spec["tree"] == "raw":
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        conn.execute("INSERT INTO raw (v) VALUES (0)")

        def one(i: int) -> None:
            conn.execute("INSERT INTO raw (v) VALUES (%s)", (i,))
    else:
        import offload

        app = offload.App(url)
        task = app.task(name="t")(_noop)
        task.enqueue(0)

        def one(i: int) -> None:
            task.enqueue(i)

    print("ready", flush=True)
    sys.stdin.readline()
    start = time.time()
    for i in range(n):
        one(i)
    print(json.dumps({"start": start, "end": time.time()}), flush=True)


def _noop(n: int) -> None:
    """The enqueued task: never run here."""


def point(tree: str, path: str | None, procs: int, n: int, url: str) -> tuple[float, float]:
    """jobs/s of `procs` producer processes of `tree` on a fresh database, and jobs per WAL
    flush."""
    import psycopg

    name = "procs_enqueue"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    db_url = url.rsplit("/", 1)[0] + "/" + name
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = path
        subprocess.run(
            [sys.executable, "-c", f"import offload; offload.App({db_url!r}).migrate()"],
            env=env,
            check=True,
        )
    else:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE raw (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v bigint)"
            )
    spec = json.dumps({"tree": tree, "n": n, "url": db_url})
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--producer", spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(procs)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    syncs = _wal_syncs(url)
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    spans = [json.loads(child.communicate()[0].strip().splitlines()[-1]) for child in children]
    syncs = _wal_syncs(url) - syncs
    seconds = float(max(s["end"] for s in spans)) - float(min(s["start"] for s in spans))
    return procs * n / seconds, procs * n / max(syncs, 1)


def _wal_syncs(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()
        assert row is not None
        return int(row[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--producer", help=argparse.SUPPRESS)
    parser.add_argument("--base", required=False, help="the base tree's src directory")
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--n", type=int, default=400, help="jobs per producer process")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="a server with fsync on (default: a private cluster)")
    args = parser.parse_args()
    if args.producer:
        producer(json.loads(args.producer))
        return 0
    trees: list[tuple[str, str | None]] = [("raw", None), ("tree", f"{ROOT / 'src'}:{ROOT}")]
    if args.base:
        trees.insert(1, ("base", args.base))
    server = None
    url: str = args.url
    if args.url is None:
        from benchmarks.peers.services import Postgres

        server = Postgres()
        url = server.url
    seen: dict[tuple[str, int], list[tuple[float, float]]] = {}
    try:
        for _ in range(args.rounds):
            for procs in (1, args.procs):
                for tree, path in trees:
                    seen.setdefault((tree, procs), []).append(point(tree, path, procs, args.n, url))
    finally:
        if server is not None:
            server.stop()
    raw1 = statistics.median(rate for rate, _ in seen[("raw", 1)])
    print(f"load average {os.getloadavg()[0]:.2f}; medians of {args.rounds} rounds")
    print("| row | processes | jobs/s (min-max) | x raw 1 process | jobs per WAL flush |")
    print("|---|---|---|---|---|")
    for (tree, procs), points in seen.items():
        rates = [rate for rate, _ in points]
        med = statistics.median(rates)
        per_flush = statistics.median(jobs for _, jobs in points)
        print(
            f"| {tree} | {procs} | {med:,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"
            f" | {med / raw1:.2f} | {per_flush:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
