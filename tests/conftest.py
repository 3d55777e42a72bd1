"""Shared fixtures: a throwaway PostgreSQL for the session and a database URL per test.

`db_url` is parametrised over both backends, so any test taking it (or `app`/`backend`)
runs once on SQLite and once on PostgreSQL. PostgreSQL failing to start is an error in the
tests that need it, never a skip.

Temporary files (each test's SQLite files, the throwaway PostgreSQL cluster) go to a
RAM-backed directory when the machine has one with room and TMPDIR is not set: creating a
database there costs milliseconds instead of a disk's file-system syncs. The behaviours under
test do not depend on it (a process killed mid-write leaves the same bytes in the page cache
as on disk); set TMPDIR to run on a disk instead.

Under pytest-xdist (`scripts/test` runs two pytest processes) each process has its own
session fixtures, so its own throwaway PostgreSQL cluster: a test that stops the server or
creates roles never disturbs the other process. `tests/scheduling.py` says which tests run
apart, one at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler.protocol import Scheduling

import offload
from offload.backends.base import Backend
from tests.pgserver import PostgresServer, drop_database, fresh_database, start_postgres
from tests.scheduling import ApartScheduling

BACKENDS = ["sqlite", "postgres"]
_db_numbers = itertools.count()
#: A directory in RAM, used for temporary files if it has this much room.
RAM_DIR = Path("/dev/shm")
RAM_DIR_MIN_FREE = 2 * 2**30


def pytest_configure(config: pytest.Config) -> None:
    """Put temporary files in RAM_DIR (see the module docstring) unless TMPDIR is set."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        # An xdist worker runs with COLUMNS=80 and LINES=24 set, which the commands tests
        # start would inherit: `offload queues` then cut its table to 80 columns.
        for name in ("COLUMNS", "LINES"):
            os.environ.pop(name, None)
    if os.environ.get("TMPDIR") or not RAM_DIR.is_dir() or not os.access(RAM_DIR, os.W_OK):
        return
    if shutil.disk_usage(RAM_DIR).free < RAM_DIR_MIN_FREE:
        return
    os.environ["TMPDIR"] = str(RAM_DIR)  # for the processes tests start, too
    tempfile.tempdir = str(RAM_DIR)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> Scheduling | None:
    """With `--dist loadgroup`, xdist's grouping plus the tests of `scheduling.APART`."""
    if config.getvalue("dist") != "loadgroup":
        return None
    return ApartScheduling(config, log)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (started here unless given by env)."""
    server = start_postgres()
    yield server
    server.stop()


def _pg_database(server: PostgresServer, template: str) -> Iterator[str]:
    """A new database on `server`, a copy of `template`, for one test (dropped after it)."""
    name = f"offload_t{os.getpid()}_{next(_db_numbers)}"
    yield fresh_database(server.url, name, template=template)
    drop_database(server.url, name)


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped after it)."""
    yield from _pg_database(pg_server, "template0")


@pytest.fixture
def pg_app(pg_url: str) -> Iterator[offload.App]:
    """An App on `pg_url`, migrated, for the tests of PostgreSQL alone."""
    application = offload.App(pg_url)
    application.migrate()
    yield application
    application.close()


@pytest.fixture(scope="session")
def pg_server_two() -> Iterator[PostgresServer]:
    """A second PostgreSQL cluster, for the tests of an App over shards on two servers."""
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def pg_url_two(pg_server_two: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the second cluster for one test (dropped after it)."""
    name = f"offload_t{os.getpid()}_{next(_db_numbers)}"
    yield fresh_database(pg_server_two.url, name)
    drop_database(pg_server_two.url, name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file for one test."""
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on each backend in turn: empty, or already a copy of the migrated
    one when the test takes `migrated_db_url` too (each test's database is built once)."""
    name = "pg_url" if request.param == "postgres" else "sqlite_url"
    if "migrated_db_url" in request.fixturenames:
        name = name.replace("_url", "_migrated_url")
    url: str = request.getfixturevalue(name)
    return url


def _migrate(url: str) -> None:
    application = offload.App(url)
    application.migrate()
    application.close()


@pytest.fixture(scope="session")
def pg_migrated(pg_server: PostgresServer) -> Iterator[str]:
    """The name of a PostgreSQL database migrated once, which `migrated_db_url` copies."""
    name = f"offload_migrated{os.getpid()}"
    _migrate(fresh_database(pg_server.url, name))
    yield name
    drop_database(pg_server.url, name)


@pytest.fixture(scope="session")
def sqlite_migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once, self-contained (no -wal file), which `migrated_db_url`
    copies."""
    directory = tmp_path_factory.mktemp("migrated")
    _migrate(f"sqlite:///{directory / 'work.db'}")
    with (
        contextlib.closing(sqlite3.connect(directory / "work.db")) as source,
        contextlib.closing(sqlite3.connect(directory / "jobs.db")) as copy,
    ):
        source.backup(copy)
    return directory / "jobs.db"


@pytest.fixture
def pg_migrated_url(pg_server: PostgresServer, pg_migrated: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, a copy of `pg_migrated` (dropped after it)."""
    yield from _pg_database(pg_server, pg_migrated)


@pytest.fixture
def sqlite_migrated_url(sqlite_url: str, sqlite_migrated: Path) -> str:
    """A fresh SQLite file for one test, a copy of `sqlite_migrated`."""
    shutil.copyfile(sqlite_migrated, sqlite_url[len("sqlite:///") :])
    return sqlite_url


@pytest.fixture
def migrated_db_url(db_url: str) -> str:
    """`db_url`, its database a copy of one migrated once per session: the same schema and
    rows as migrating it here, without running every migration for each test."""
    return db_url


@pytest.fixture
def app(migrated_db_url: str) -> Iterator[offload.App]:
    """An App on a fresh, migrated database of each backend."""
    application = offload.App(migrated_db_url)
    application.migrate()  # finds the schema current, and declares as migrate always does
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
