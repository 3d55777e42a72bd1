"""Shared fixtures: a throwaway PostgreSQL for the session and a database URL per test.

`db_url` is parametrised over both backends, so any test taking it (or `app`/`backend`)
runs once on SQLite and once on PostgreSQL. PostgreSQL failing to start is an error in the
tests that need it, never a skip.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import offload
from offload.backends.base import Backend
from tests.pgserver import PostgresServer, fresh_database, start_postgres

BACKENDS = ["sqlite", "postgres"]
_db_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (started here unless given by env)."""
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return fresh_database(pg_server.url, f"offload_t{os.getpid()}_{next(_db_numbers)}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file for one test."""
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on each backend in turn."""
    name = "pg_url" if request.param == "postgres" else "sqlite_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def app(db_url: str) -> Iterator[offload.App]:
    """An App on a fresh, migrated database of each backend."""
    application = offload.App(db_url)
    application.migrate()
    yield application
    application.close()


@pytest.fixture
def backend(app: offload.App) -> Backend:
    """The migrated backend of `app`."""
    return app.backend


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (append them): any still running is killed at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
