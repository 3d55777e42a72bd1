"""Workers and producers through PgBouncer (RELIABILITY.md test 13): in transaction mode
with `pool_mode=transaction` in the URL (no LISTEN there: workers poll; no prepared
statements), in session mode as they are, and a clear error when the mode is not said."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import offload
from offload import JobState
from offload.core.options import EnqueueOptions
from tests.faults.bouncer import Bouncer
from tests.faults.conftest import StartWorker, basic_app
from tests.pgserver import PostgresServer

pytestmark = pytest.mark.timeout(180)
POLL = 0.5


@pytest.fixture(params=["transaction", "session"])
def bouncer(request: pytest.FixtureRequest, own_pg: PostgresServer) -> Iterator[Bouncer]:
    assert own_pg.port is not None
    running = Bouncer(own_pg.port, request.param)
    yield running
    running.close()


def _through(bouncer: Bouncer, own_pg: PostgresServer, url: str) -> str:
    assert own_pg.port is not None
    linked = bouncer.url(url, own_pg.port)
    return f"{linked}?pool_mode=transaction" if bouncer.mode == "transaction" else linked


def test_workers_and_producers_through_pgbouncer(
    bouncer: Bouncer,
    own_pg: PostgresServer,
    outage_url: str,
    start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    url = _through(bouncer, own_pg, outage_url)
    app = basic_app(url)
    try:
        worker = start_worker(url, "w", executor="thread", concurrency=4, poll=POLL)
        sleep: offload.Task[..., str] = offload.Task(
            app, app.registry.get("sleep"), EnqueueOptions()
        )
        ids = [h.id for h in sleep.enqueue_many([(0.001,)] * 2000)]
        big = app.enqueue("sleep", [0, "x" * (2**20 - 64)])  # NOTIFY carries no payload
        assert big.result(timeout=60) == "x" * (2**20 - 64)
        latencies = []
        for n in range(20):  # one at a time, the worker idle: found by a wake-up or a poll
            started = time.monotonic()
            assert app.enqueue("add", [n, 1]).result(timeout=30) == n + 1
            latencies.append(time.monotonic() - started)
        assert max(latencies) <= POLL + 1.0, latencies
        if bouncer.mode == "session":  # LISTEN works there: no poll wait
            assert statistics.median(latencies) < POLL / 2, latencies
        deadline = time.monotonic() + 60
        while app.queue_counts()["default"].get("succeeded", 0) < len(ids) + 21:
            assert time.monotonic() < deadline, app.queue_counts()
            time.sleep(0.2)
        assert app.job(ids[0]).status() is JobState.SUCCEEDED
        assert worker.poll() is None
        log = (tmp_path / "w.log").read_text()
        assert "Traceback" not in log and "unavailable" not in log, log[-3000:]
    finally:
        app.close()


def test_transaction_pooling_unannounced_is_a_clear_error(
    own_pg: PostgresServer, outage_url: str
) -> None:
    """Without pool_mode=transaction psycopg prepares repeated statements, which a
    transaction pooler loses between transactions: the error names the fix."""
    assert own_pg.port is not None
    running = Bouncer(own_pg.port, "transaction")
    apps = [basic_app(running.url(outage_url, own_pg.port)) for _ in range(4)]
    errors: list[BaseException] = []

    def hammer(app: offload.App) -> None:
        try:
            for n in range(200):
                app.enqueue("add", [n, n])
                app.jobs(limit=1)
        except BaseException as exc:  # the first error ends this client
            errors.append(exc)

    try:
        threads = [threading.Thread(target=hammer, args=(app,)) for app in apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors, "4 clients sharing sessions never met a lost prepared statement"
        for error in errors:
            assert isinstance(error, offload.BackendUnavailable), repr(error)
            assert "pool_mode=transaction" in str(error), str(error)
            assert not error.transient
    finally:
        for app in apps:
            app.close()
        running.close()
