"""Back pressure under racing producers, with real processes (issue 14; RELIABILITY 26).

A queue bounded at 1,000; 16 (the issue's test) or 32 (RELIABILITY test 26) producer
processes enqueue as fast as they can while a real worker drains it slowly, so that the
queue keeps filling and producers see both outcomes. A sampler reads the number of jobs
not yet started from the database every 10 ms: it never exceeds the bound. Every refused
caller got QueueFull with retry_after > 0, and the jobs stored are exactly those the
producers were told were stored (a refused enqueue_many stored nothing). The HTTP half of
RELIABILITY 26 (503 with Retry-After) waits for the HTTP API, which does not exist yet.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

import offload
from offload.core.flow import RETRY_AFTER_CEILING
from tests.conformance import procs
from tests.conformance.helpers import RawDB, is_sqlite, sqlite_path
from tests.flow import backpressure_procs
from tests.runtime.conftest import PYTHONPATH, ROOT

BOUND = 1_000
QUEUE = "bounded"
#: Seconds the producers race once all are started.
RACE = 8.0
NOT_STARTED = (
    "SELECT count(*) FROM offload_jobs WHERE queue = 'bounded' "
    "AND state IN ('available', 'scheduled', 'retrying')"
)


class Sampler(threading.Thread):
    """Counts the queue's jobs not yet started every 10 ms on a connection of its own."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.samples: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        count = self._counter()
        while not self.stop.is_set():
            self.samples.append(count())
            time.sleep(0.01)

    def _counter(self) -> Callable[[], int]:
        if is_sqlite(self.url):
            db = sqlite3.connect(sqlite_path(self.url), isolation_level=None)
            return lambda: int(db.execute(NOT_STARTED).fetchone()[0])
        pg = psycopg.connect(self.url, autocommit=True)
        return lambda: int(pg.execute(NOT_STARTED).fetchone()[0])  # type: ignore[index]


@pytest.mark.parametrize("producers", [16, 32], ids=["16-producers", "reliability-26-32"])
def test_racing_producers_never_push_the_queue_past_its_bound(
    db_url: str, tmp_path: Path, spawned: list[subprocess.Popen[bytes]], producers: int
) -> None:
    app = offload.App(db_url)
    app.migrate()
    app.queue(QUEUE, max_depth=BOUND)
    app.ready()
    app.close()
    env = dict(os.environ, OFFLOAD_URL=db_url, PYTHONPATH=PYTHONPATH)
    env.update(WORKER_QUEUES=QUEUE, WORKER_CONCURRENCY="1", WORKER_EXECUTOR="thread")
    env.update(WORKER_LEASE="3")  # a heartbeat (with its drain rate) every second
    worker = subprocess.Popen([sys.executable, "-m", "tests.apps.run_worker"], cwd=ROOT, env=env)
    spawned.append(worker)

    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(producers + 1)
    outs = [tmp_path / f"producer{i}.json" for i in range(producers)]
    processes = procs.start_all(
        [(backpressure_procs.producer, (db_url, QUEUE, str(out), start, RACE)) for out in outs]
    )
    deadline = time.monotonic() + 60  # the race starts once the worker serves the queue
    while not RawDB(db_url).scalar("SELECT count(*) FROM offload_workers"):
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.1)
    sampler = Sampler(db_url)
    sampler.start()
    start.wait(120)
    codes = procs.join_all(processes, timeout=RACE + 60)
    sampler.stop.set()
    sampler.join(5)
    reports = procs.read_reports(outs)
    assert codes == [0] * producers
    for i, report in enumerate(reports):
        assert report["errors"] == [], f"producer {i}: {report['errors']}"
    assert worker.poll() is None, "the worker died"

    assert len(sampler.samples) > 100, "the sampler did not run through the race"
    assert max(sampler.samples) <= BOUND, f"{max(sampler.samples)} jobs waiting"
    waits = [wait for report in reports for wait in report["waits"]]
    stored = sum(report["stored"] for report in reports)
    assert waits, "no producer was refused: the race never filled the queue"
    assert stored >= BOUND, "the producers never filled the queue"
    assert all(0 < wait <= RETRY_AFTER_CEILING for wait in waits)
    assert min(waits) < RETRY_AFTER_CEILING, "no refusal used the worker's drain rate"
    assert sum(report["batches_refused"] for report in reports) > 0
    (stamp,) = RawDB(db_url).query("SELECT rates FROM offload_workers")
    rates = json.loads(stamp["rates"]) if isinstance(stamp["rates"], str) else stamp["rates"]
    assert rates.get(QUEUE, 0) > 0, f"the worker reported no drain rate: {rates}"
    done = RawDB(db_url).scalar("SELECT count(*) FROM offload_jobs WHERE state = 'succeeded'")
    assert done > 0, "the worker never made room: the race was not at the edge"
    rows = RawDB(db_url).scalar("SELECT count(*) FROM offload_jobs")
    assert rows == stored, "jobs stored differ from the enqueues that returned"
    print(
        f"{producers} producers: {stored} jobs stored, {len(waits)} refused "
        f"(retry_after {min(waits):.1f}-{max(waits):.1f} s); {len(sampler.samples)} samples, "
        f"at most {max(sampler.samples)} waiting; drain rate {rates[QUEUE]:.1f}/s"
    )
