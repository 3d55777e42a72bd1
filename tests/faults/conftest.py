"""Fixtures of the fault rig: a PostgreSQL server of the module's own (halted and started by
its tests), a proxy in front of it, and worker processes whose log is kept for reading."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import offload
from tests.faults.proxy import Proxy
from tests.pgserver import PostgresServer, start_postgres
from tests.pgserver.databases import fresh_database
from tests.runtime.conftest import PYTHONPATH, ROOT

StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture(scope="module")
def own_pg() -> Iterator[PostgresServer]:
    """A throwaway server for this module alone: its tests stop and start it."""
    server = start_postgres(durable_commits=True)  # an acknowledged enqueue survives a crash
    if not server.owned:
        server.stop()
        pytest.fail(
            "the fault tests stop and start PostgreSQL: they need the throwaway server the "
            "tests start, not OFFLOAD_TEST_POSTGRES_URL"
        )
    yield server
    server.stop()


@pytest.fixture
def outage_url(own_pg: PostgresServer) -> str:
    """A fresh, migrated database on the module's server."""
    url = fresh_database(own_pg.url, f"t_{uuid.uuid4().hex[:12]}")
    app = offload.App(url)
    app.migrate()
    app.close()
    return url


def basic_app(url: str) -> offload.App:
    """An App on `url` with tests.apps.basic's tasks (the workers' app) registered."""
    from tests.apps import basic

    app = offload.App(url)
    for name in basic.app.registry.names():
        app.registry.add(basic.app.registry.get(name))
    return app


@pytest.fixture
def proxy(own_pg: PostgresServer) -> Iterator[Proxy]:
    assert own_pg.port is not None
    link = Proxy(("127.0.0.1", own_pg.port))
    yield link
    link.close()


@pytest.fixture
def start_worker(tmp_path: Path, spawned: list[subprocess.Popen[bytes]]) -> Iterator[StartWorker]:
    """Start `python -m tests.apps.run_worker` on a URL; its stderr goes to `<name>.log`
    under tmp_path. All are killed at teardown."""

    def start(url: str, name: str = "worker", **settings: object) -> subprocess.Popen[bytes]:
        env = dict(os.environ, OFFLOAD_URL=url, PYTHONPATH=PYTHONPATH)
        for key, value in settings.items():
            env[f"WORKER_{key.upper()}"] = str(value)
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.apps.run_worker"], cwd=ROOT, env=env, stderr=log
        )
        log.close()
        spawned.append(process)
        return process

    yield start
