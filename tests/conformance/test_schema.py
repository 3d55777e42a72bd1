"""Schema versions: migrate, re-migrate, too old, too new (DESIGN.md section 3, RELIABILITY
tests 17 and 29)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import offload
from offload.backends import open_backend
from offload.backends.base import Backend
from offload.core.errors import BackendError, SchemaMismatch
from tests.conformance.helpers import RawDB, insert, is_sqlite, sqlite_path

OFFLOAD_TABLES = ["offload_jobs", "offload_schema", "offload_workers"]


@contextmanager
def opened(url: str) -> Iterator[Backend]:
    backend = open_backend(url)
    try:
        yield backend
    finally:
        backend.close()


def _target(url: str) -> int:
    """The version this code needs, as reported by a refused schema check."""
    with opened(url) as backend:
        try:
            backend.schema.check()
        except SchemaMismatch as exc:
            return exc.needed
    raise AssertionError("schema_check passed on a database that was never migrated")


def _file_digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_fresh_database_is_version_zero_and_refused(db_url: str) -> None:
    with opened(db_url) as backend:
        assert backend.schema.version() == 0
        with pytest.raises(SchemaMismatch) as info:
            backend.schema.check()
        err = info.value
        assert err.needed == backend.schema.target
        assert isinstance(err, BackendError)
        assert err.found == 0
        assert err.needed >= 1
        message = str(err)
        assert "offload migrate" in message
        assert backend.location in message
        assert "version 0" in message
        assert "\n" not in message
    # Checking created nothing.
    assert [t for t in RawDB(db_url).tables() if t.startswith("offload")] == []


def test_migrate_creates_the_schema_and_records_each_version(db_url: str) -> None:
    target = _target(db_url)
    with opened(db_url) as backend:
        assert backend.schema.migrate() == target
        assert backend.schema.version() == target == backend.schema.target
        backend.schema.check()
    raw = RawDB(db_url)
    assert set(OFFLOAD_TABLES) <= set(raw.tables())
    versions = [row["version"] for row in raw.query("SELECT version FROM offload_schema")]
    assert versions == list(range(1, target + 1))


def test_migrate_twice_is_a_no_op(db_url: str) -> None:
    with opened(db_url) as backend:
        target = backend.schema.migrate()
        ids = insert(backend, 5)
    raw = RawDB(db_url)
    schema = raw.schema_snapshot()
    versions = raw.query("SELECT * FROM offload_schema ORDER BY version")
    rows = raw.all_rows()
    for _ in range(2):
        with opened(db_url) as backend:
            assert backend.schema.migrate() == target
            backend.schema.check()
            assert [backend.jobs.get(i).args for i in ids] == [[i] for i in range(5)]
    assert raw.schema_snapshot() == schema
    assert raw.query("SELECT * FROM offload_schema ORDER BY version") == versions
    assert raw.all_rows() == rows


def test_concurrent_migrations_apply_each_version_once(db_url: str) -> None:
    target = _target(db_url)
    results: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def run() -> None:
        try:
            with opened(db_url) as backend:
                start.wait()
                results.append(backend.schema.migrate())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert results == [target] * 4
    versions = [row["version"] for row in RawDB(db_url).query("SELECT version FROM offload_schema")]
    assert versions == list(range(1, target + 1))


def _record_version(url: str, version: int) -> None:
    if is_sqlite(url):
        RawDB(url).execute(
            "INSERT INTO offload_schema (version, applied_at) VALUES (?, 0)", [version]
        )
    else:
        RawDB(url).execute("INSERT INTO offload_schema (version) VALUES (?)", [version])


def test_newer_schema_is_refused_and_left_untouched(db_url: str) -> None:
    with opened(db_url) as backend:
        target = backend.schema.migrate()
        insert(backend, 3)
    _record_version(db_url, 999)
    raw = RawDB(db_url)
    schema, rows = raw.schema_snapshot(), raw.all_rows()
    versions = raw.query("SELECT * FROM offload_schema ORDER BY version")
    digest = _file_digest(sqlite_path(db_url)) if is_sqlite(db_url) else ""

    with opened(db_url) as backend:
        assert backend.schema.version() == 999
        with pytest.raises(SchemaMismatch) as info:
            backend.schema.check()
        assert (info.value.found, info.value.needed) == (999, target)
        message = str(info.value)
        assert "upgrade offload" in message
        assert "offload migrate" not in message
        assert backend.location in message
        assert "\n" not in message
        with pytest.raises(SchemaMismatch, match="upgrade offload"):
            backend.schema.migrate()
    # Through the App: neither an enqueue nor a worker may touch it.
    app = offload.App(db_url)
    try:

        @app.task(name="t")
        def t() -> None:
            return None

        with pytest.raises(SchemaMismatch, match="upgrade offload"):
            t.enqueue()
        with pytest.raises(SchemaMismatch, match="upgrade offload"):
            app.worker(executor="thread", burst=True, install_signals=False)
        with pytest.raises(SchemaMismatch):
            app.migrate()
    finally:
        app.close()

    assert raw.schema_snapshot() == schema
    assert raw.all_rows() == rows
    assert raw.query("SELECT * FROM offload_schema ORDER BY version") == versions
    if is_sqlite(db_url):
        path = sqlite_path(db_url)
        assert _file_digest(path) == digest, "the refused database file was modified"
        assert not os.path.exists(path + "-wal") or os.path.getsize(path + "-wal") == 0


def test_app_auto_migrates_sqlite_but_never_postgresql(db_url: str) -> None:
    app = offload.App(db_url)
    try:

        @app.task(name="t")
        def t() -> None:
            return None

        if is_sqlite(db_url):
            assert app.auto_migrate is True
            handle = t.enqueue()
            assert handle.job().task == "t"
            app.backend.schema.check()
        else:
            assert app.auto_migrate is False
            with pytest.raises(SchemaMismatch) as info:
                t.enqueue()
            assert "offload migrate" in str(info.value)
            assert info.value.found == 0
            with pytest.raises(SchemaMismatch, match="offload migrate"):
                app.jobs()
            assert [x for x in RawDB(db_url).tables() if x.startswith("offload")] == []
            # Explicitly migrating makes it usable.
            app.migrate()
            assert t.enqueue().job().task == "t"
    finally:
        app.close()


def test_auto_migrate_can_be_forced_either_way(db_url: str) -> None:
    forced = offload.App(db_url, auto_migrate=not is_sqlite(db_url))
    try:

        @forced.task(name="t")
        def t() -> None:
            return None

        if is_sqlite(db_url):
            with pytest.raises(SchemaMismatch, match="offload migrate"):
                t.enqueue()
        else:
            assert t.enqueue().job().task == "t"
    finally:
        forced.close()
