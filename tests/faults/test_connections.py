"""A PostgreSQL worker holds a few connections whatever its concurrency (3 by default: its
loop's, its outcome writer's, its LISTEN), so that many workers fit `max_connections`."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

import offload
from offload.core.options import EnqueueOptions
from tests.faults.conftest import StartWorker, basic_app
from tests.pgserver import PostgresServer

pytestmark = pytest.mark.timeout(120)


def _sessions(admin_url: str, database: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("connections", [None, 1])
def test_worker_connections_stay_few(
    own_pg: PostgresServer, outage_url: str, start_worker: StartWorker, connections: int | None
) -> None:
    database = str(conninfo_to_dict(outage_url)["dbname"])
    app = basic_app(outage_url)
    sleep: offload.Task[..., str] = offload.Task(app, app.registry.get("sleep"), EnqueueOptions())
    ids = [h.id for h in sleep.enqueue_many([(0.002,)] * 3000)]
    app.close()
    assert _sessions(own_pg.url, database) == 0
    settings = {} if connections is None else {"connections": connections}
    worker = start_worker(outage_url, "w", executor="thread", concurrency=16, **settings)
    most = 0
    deadline = time.monotonic() + 90
    check = basic_app(outage_url)
    try:
        while time.monotonic() < deadline:
            most = max(most, _sessions(own_pg.url, database))
            if check.job(ids[-1]).status() is offload.JobState.SUCCEEDED:
                break
            time.sleep(0.05)
        assert worker.poll() is None
        assert check.queue_counts()["default"]["succeeded"] == len(ids)
    finally:
        check.close()
    # The checking app holds one connection of its own while it reads.
    allowed = (2 if connections is None else connections) + 1 + 1
    assert 2 <= most <= allowed, f"{most} sessions at most"
