"""Bad database files (RELIABILITY 17): refused with one line naming the path and cause,
and left byte-identical."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import offload
import offload.backends.sqlite  # imported before any fork below
from offload.backends import open_backend
from offload.core.errors import (
    BackendUnavailable,
)

# -- bad SQLite files (RELIABILITY 17) ----------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _try_everything(path: Path) -> list[tuple[str, str, str]]:
    """Each entry point on the file: (operation, exception type, message)."""
    url = f"sqlite:///{path}"
    out: list[tuple[str, str, str]] = []
    backend = open_backend(url)
    calls: list[tuple[str, Callable[[], object]]] = [
        ("schema_check", backend.schema.check),
        ("migrate", backend.schema.migrate),
        ("queue_counts", backend.jobs.counts),
    ]
    app = offload.App(url)

    @app.task(name="t")
    def t() -> None:
        return None

    calls.append(("enqueue", t.enqueue))
    for name, call in calls:
        try:
            call()
            out.append((name, "", "no error"))
        except Exception as exc:
            out.append((name, type(exc).__name__, str(exc)))
    backend.close()
    app.close()
    return out


def _as_unprivileged(fn: Callable[[], list[tuple[str, str, str]]]) -> list[tuple[str, str, str]]:
    """Run `fn` as an unprivileged user: root ignores directory permissions."""
    if os.geteuid() != 0:
        return fn()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            payload = json.dumps(fn()).encode()
        except BaseException as exc:
            payload = json.dumps([["crash", type(exc).__name__, repr(exc)]]).encode()
            code = 1
        os.write(write_end, payload)
        os._exit(code)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 1 << 16):
        data += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    return [(str(a), str(b), str(c)) for a, b, c in json.loads(data)]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="offload-conformance-"))
    path.chmod(0o755)
    yield path
    for sub in path.rglob("*"):
        if sub.is_dir():
            sub.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


def _valid_database(path: Path) -> None:
    app = offload.App(f"sqlite:///{path}")

    @app.task(name="t")
    def t(i: int) -> None:
        return None

    t.enqueue_many([(i,) for i in range(50)])
    app.close()
    assert not Path(f"{path}-wal").exists()


def _assert_one_line_unavailable(results: list[tuple[str, str, str]], path: Path) -> None:
    assert len(results) == 4, results
    for operation, kind, message in results:
        assert kind == "BackendUnavailable", (operation, kind, message)
        assert str(path) in message, message
        assert "\n" not in message
        assert "(" in message  # the cause, as SQLite words it


@pytest.mark.parametrize("damage", ["random file", "magic then random", "random header"])
def test_corrupt_file_is_refused_and_left_byte_identical(
    sqlite_url: str, tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "bad.db"
    if damage == "random file":
        path.write_bytes(os.urandom(8192))
    elif damage == "magic then random":
        path.write_bytes(b"SQLite format 3\x00" + os.urandom(8176))
    else:
        _valid_database(path)
        data = bytearray(path.read_bytes())
        data[16:100] = os.urandom(84)
        path.write_bytes(bytes(data))
    digest = _digest(path)
    results = _try_everything(path)
    _assert_one_line_unavailable(results, path)
    assert any(("not a SQLite database" in m or "corrupt" in m) for _, _, m in results)
    assert _digest(path) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.db"]


def test_damaged_schema_page_is_refused_and_left_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    _valid_database(path)
    data = bytearray(path.read_bytes())
    data[100:4096] = os.urandom(3996)  # page 1 after the header: the schema table
    path.write_bytes(bytes(data))
    digest = _digest(path)
    _assert_one_line_unavailable(_try_everything(path), path)
    assert _digest(path) == digest


@pytest.mark.parametrize("file_mode", ["writable file", "read-only file"])
def test_read_only_directory_is_refused_and_left_byte_identical(
    shared_dir: Path, file_mode: str
) -> None:
    folder = shared_dir / "ro"
    folder.mkdir()
    path = folder / "jobs.db"
    _valid_database(path)
    if file_mode == "writable file":
        path.chmod(0o666)
    else:
        path.chmod(0o444)
    folder.chmod(0o555)
    digest = _digest(path)
    results = _as_unprivileged(lambda: _try_everything(path))
    _assert_one_line_unavailable(results, path)
    assert all("read-only" in m or "readonly" in m for _, _, m in results), results
    assert _digest(path) == digest
    assert sorted(p.name for p in folder.iterdir()) == ["jobs.db"]


def test_new_file_in_a_read_only_directory_is_refused(shared_dir: Path) -> None:
    folder = shared_dir / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    path = folder / "jobs.db"
    results = _as_unprivileged(lambda: _try_everything(path))
    _assert_one_line_unavailable(results, path)
    assert list(folder.iterdir()) == []


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "jobs.db"
    backend = open_backend(f"sqlite:///{path}")
    with pytest.raises(BackendUnavailable) as info:
        backend.schema.check()
    assert str(path) in str(info.value)
    assert "directory does not exist" in str(info.value)
    assert not (tmp_path / "no").exists()


def test_sqlite_connections_are_wal_and_synchronous_full(sqlite_url: str) -> None:
    """RELIABILITY 2, CI part: the connection offload opens is WAL with synchronous=FULL."""
    backend = open_backend(sqlite_url)
    try:
        backend.schema.migrate()
        conn: sqlite3.Connection = backend._conn()  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    finally:
        backend.close()
    with contextlib.closing(open_backend(sqlite_url + "?synchronous=normal")) as relaxed:
        relaxed.now()
        conn = relaxed._conn()  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def _open_files_on(path: Path) -> int:
    """How many of this process's file descriptors are open on `path`."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_failed_open_closes_its_connection_at_once(tmp_path: Path) -> None:
    """The connection opened before a PRAGMA fails is closed then, not at garbage
    collection: the error (and its traceback, which holds the connection) may live long."""
    path = tmp_path / "bad.db"
    path.write_bytes(os.urandom(8192))
    backend = open_backend(f"sqlite:///{path}")
    try:
        errors = []
        for _ in range(3):
            with pytest.raises(BackendUnavailable) as info:
                backend.schema.check()
            errors.append(info)  # kept alive, as a caller logging them would
        assert _open_files_on(path) == 0
    finally:
        backend.close()
