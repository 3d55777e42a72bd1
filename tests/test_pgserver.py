"""Self-test of the PostgreSQL test machinery in the tests/pgserver package."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.pgserver import (
    PostgresServer,
    database_url,
    drop_database,
    fresh_database,
    start_postgres,
)


@pytest.fixture(scope="session")
def _pg_for_selftest() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


def _table_exists(url: str, table: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    assert row is not None
    return bool(row[0])


def test_select_one(_pg_for_selftest: PostgresServer) -> None:
    with psycopg.connect(_pg_for_selftest.url, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_fresh_database_is_empty_and_isolated(_pg_for_selftest: PostgresServer) -> None:
    url_a = fresh_database(_pg_for_selftest.url, "offload_selftest_a")
    url_b = fresh_database(_pg_for_selftest.url, "offload_selftest_b")
    assert url_a != url_b

    with psycopg.connect(url_a, autocommit=True) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("offload_selftest_a",)
        conn.execute("CREATE TABLE only_in_a (id int PRIMARY KEY)")
        conn.execute("INSERT INTO only_in_a VALUES (1)")
    with psycopg.connect(url_b, autocommit=True) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("offload_selftest_b",)

    assert _table_exists(url_a, "only_in_a")
    assert not _table_exists(url_b, "only_in_a")

    # Recreating a database gives an empty one again, even with a session still open on it.
    lingering = psycopg.connect(url_a, autocommit=True)
    try:
        assert fresh_database(_pg_for_selftest.url, "offload_selftest_a") == url_a
        with pytest.raises(psycopg.OperationalError):  # terminated by WITH (FORCE)
            lingering.execute("SELECT 1")
    finally:
        lingering.close()
    assert not _table_exists(url_a, "only_in_a")
    with psycopg.connect(url_a, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public'"
        ).fetchone()
    assert row == (0,)


def test_fresh_database_from_a_database_url(_pg_for_selftest: PostgresServer) -> None:
    # Passing a URL that already names the target database still works.
    url = fresh_database(_pg_for_selftest.url, "offload_selftest_c")
    assert fresh_database(url, "offload_selftest_c") == url
    assert database_url(url, "postgres").endswith("/postgres")
    with pytest.raises(ValueError):
        fresh_database(_pg_for_selftest.url, "postgres")


def test_fresh_database_from_a_template_then_dropped(_pg_for_selftest: PostgresServer) -> None:
    # A copy of a template holds its tables; dropping it ends its sessions and it is gone.
    template = fresh_database(_pg_for_selftest.url, "offload_selftest_template")
    with psycopg.connect(template, autocommit=True) as conn:
        conn.execute("CREATE TABLE from_template (id int PRIMARY KEY)")
    url = fresh_database(
        _pg_for_selftest.url, "offload_selftest_copy", template="offload_selftest_template"
    )
    assert _table_exists(url, "from_template")
    lingering = psycopg.connect(url, autocommit=True)
    try:
        drop_database(_pg_for_selftest.url, "offload_selftest_copy")
        with pytest.raises(psycopg.OperationalError):  # terminated by WITH (FORCE)
            lingering.execute("SELECT 1")
    finally:
        lingering.close()
    with psycopg.connect(_pg_for_selftest.url, autocommit=True) as conn:
        names = conn.execute("SELECT datname FROM pg_database").fetchall()
    assert ("offload_selftest_copy",) not in names
    assert ("offload_selftest_template",) in names
    drop_database(_pg_for_selftest.url, "offload_selftest_copy")  # already gone: no error


def test_server_does_not_run_as_root(_pg_for_selftest: PostgresServer) -> None:
    if not _pg_for_selftest.owned:
        pytest.skip("external server from OFFLOAD_TEST_POSTGRES_URL: its owner is not ours")
    with psycopg.connect(_pg_for_selftest.url, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('data_directory')").fetchone()
    assert row is not None
    data_dir = Path(row[0])
    assert data_dir == _pg_for_selftest.data_dir
    owner = data_dir.stat().st_uid
    assert owner != 0
    if os.geteuid() == 0:
        assert _pg_for_selftest.run_as is not None
        assert owner == pwd.getpwnam(_pg_for_selftest.run_as).pw_uid
    else:
        assert owner == os.geteuid()
