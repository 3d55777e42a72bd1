"""Soak: workers and a producer through PostgreSQL crashes and cut links; prints a table.

The long size of tests/faults (RELIABILITY.md tests 9 and 12): a throwaway server, a TCP
proxy in front of it, worker processes of tests.apps.basic through the proxy, and a producer
enqueueing through the proxy at a steady rate with idempotency keys (so a retried enqueue
after OutcomeUnknown is safe). The server is crashed (`pg_ctl stop -m immediate`) and the link
cut, in turn; after each, the time until a new job runs is measured. At the end every
acknowledged job must have succeeded and no worker may have exited.

    .venv/bin/python scripts/soak_outages.py                 # 20 crashes, 10 cuts of 30 s
    .venv/bin/python scripts/soak_outages.py --crashes 2 --cuts 2 --cut-seconds 5 --jobs 1000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import offload  # noqa: E402
from offload.core.options import EnqueueOptions  # noqa: E402
from tests.faults.conftest import basic_app  # noqa: E402
from tests.faults.proxy import Proxy  # noqa: E402
from tests.pgserver import start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402


class Producer(threading.Thread):
    """Enqueues `total` jobs at `rate` per second through `url`; an enqueue that fails
    (BackendUnavailable, OutcomeUnknown) is retried with the same key until acknowledged."""

    def __init__(self, url: str, total: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.app = basic_app(url)
        self.task: offload.Task[..., str] = offload.Task(
            self.app, self.app.registry.get("sleep"), EnqueueOptions()
        )
        self.total, self.rate = total, rate
        self.acked: list[int] = []
        self.failures = 0
        self.unknown = 0
        self.slowest_failure = 0.0

    def run(self) -> None:
        start = time.monotonic()
        for n in range(self.total):
            time.sleep(max(start + n / self.rate - time.monotonic(), 0))
            while True:
                began = time.monotonic()
                try:
                    handle = self.task.options(idempotency_key=f"soak-{n}").enqueue(0.005)
                except offload.OutcomeUnknown:
                    self.unknown += 1
                except offload.BackendUnavailable:
                    self.failures += 1
                    self.slowest_failure = max(self.slowest_failure, time.monotonic() - began)
                    time.sleep(0.2)
                    continue
                else:
                    self.acked.append(handle.id)
                    break


def resume_time(app: offload.App, timeout: float = 120.0) -> float:
    began = time.monotonic()
    app.enqueue("add", [1, 2], priority=1000).result(timeout=timeout)
    return time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=20)
    parser.add_argument("--cuts", type=int, default=10)
    parser.add_argument("--cut-seconds", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    server = start_postgres(durable_commits=True)
    assert server.port is not None
    proxy = Proxy(("127.0.0.1", server.port))
    url = fresh_database(server.url, "soak")
    offload.App(url).migrate()
    logs = Path(tempfile.mkdtemp(prefix="offload-soak-"))
    env = dict(
        os.environ,
        OFFLOAD_URL=proxy.url(url),
        PYTHONPATH=os.pathsep.join((str(ROOT / "src"), str(ROOT))),
        WORKER_EXECUTOR="thread",
        WORKER_CONCURRENCY=str(args.concurrency),
        WORKER_LEASE="20",
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.apps.run_worker"],
            cwd=ROOT,
            env=env,
            stderr=(logs / f"w{n}.log").open("wb"),
        )
        for n in range(args.workers)
    ]
    direct = basic_app(url)
    rows: list[tuple[str, float, float]] = []
    try:
        resume_time(direct)
        expected = args.crashes * 6 + args.cuts * (args.cut_seconds + 4) + 10
        producer = Producer(proxy.url(url), args.jobs, args.jobs / expected)
        producer.start()
        for n in range(args.crashes):
            time.sleep(2.0)
            began = time.monotonic()
            server.halt("immediate")
            time.sleep(1.0 + n % 3)
            server.start()
            rows.append((f"crash {n + 1}", time.monotonic() - began, resume_time(direct)))
        for n in range(args.cuts):
            time.sleep(2.0)
            proxy.cut()
            time.sleep(args.cut_seconds)
            proxy.restore()
            rows.append((f"cut {n + 1}", args.cut_seconds, resume_time(direct)))
        producer.join()
        deadline = time.monotonic() + 300
        while True:
            done = direct.queue_counts().get("default", {}).get("succeeded", 0)
            if done >= len(producer.acked) + len(rows) + 1 or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        lost = sum(direct.job(i).status() is not offload.JobState.SUCCEEDED for i in producer.acked)
        exits = [w.poll() for w in workers if w.poll() is not None]
    finally:
        for w in workers:
            w.kill()
        direct.close()
        proxy.close()
        server.stop()

    print("| outage | down, s | work resumed after, s |")
    print("|---|---|---|")
    for name, down, resumed in rows:
        print(f"| {name} | {down:.1f} | {resumed:.2f} |")
    worst = max(r for _, _, r in rows) if rows else 0.0
    print()
    print(f"jobs acknowledged: {len(producer.acked)} of {args.jobs}; lost: {lost}")
    print(f"worker exits: {len(exits)} {exits}; slowest resume: {worst:.2f} s")
    print(
        f"producer: {producer.failures} enqueues refused during outages (slowest refusal "
        f"{producer.slowest_failure:.2f} s), {producer.unknown} OutcomeUnknown (retried by key)"
    )
    print(f"worker logs: {logs}")
    return 0 if lost == 0 and not exits else 1


if __name__ == "__main__":
    sys.exit(main())
