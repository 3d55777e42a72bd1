"""Bad input is refused with an error that names it, and changes nothing stored
(DESIGN.md section 8, RELIABILITY tests 17 and 23)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

import offload
import offload.backends.sqlite  # imported before any fork below
from offload.backends import open_backend
from offload.core.errors import (
    BackendUnavailable,
    ConfigurationError,
    PayloadTooLarge,
    SerializationError,
    StorageFull,
    UnknownTask,
    ValidationError,
)
from tests.pgserver import PostgresServer

# -- arguments that are not JSON --------------------------------------------------------

NOT_JSON: list[tuple[str, Any]] = [
    ("set", {1, 2}),
    ("datetime", datetime(2024, 1, 1, tzinfo=UTC)),
    ("object", object()),
    ("bytes", b"raw"),
    ("nan", float("nan")),
    ("infinity", float("-inf")),
    ("int over 64 bits", 2**64),
    ("int under -2**63", -(2**63) - 1),
    ("non-str dict key", {1: "one"}),
    ("tuple dict key", {("a", "b"): 1}),
    ("lone surrogate", "ok\ud800"),
    ("lone surrogate dict key", {"\udfff": 1}),
    ("str subclass", type("Name", (str,), {})("x")),
    ("300-deep nesting", None),  # built below: nesting too deep to round-trip
]


def _deep(levels: int) -> Any:
    value: Any = 0
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize(("kind", "value"), NOT_JSON, ids=[kind for kind, _ in NOT_JSON])
@pytest.mark.usefixtures("stored")
def test_non_json_argument_is_refused_naming_it(
    echo: offload.Task[..., Any], kind: str, value: Any
) -> None:
    if kind == "300-deep nesting":
        value = _deep(300)
    with pytest.raises(SerializationError) as info:
        echo.enqueue("fine", [1, value])
    assert "argument 1" in str(info.value), str(info.value)
    with pytest.raises(SerializationError) as info:
        echo.enqueue("fine", payload={"inner": value})
    assert "argument 'payload'" in str(info.value), str(info.value)
    with pytest.raises(SerializationError) as info:
        echo.enqueue_many([offload.call(1), offload.call(2, bad=value)])
    assert "argument 'bad'" in str(info.value), str(info.value)


@pytest.mark.usefixtures("stored")
def test_non_json_meta_is_refused(echo: offload.Task[..., Any]) -> None:
    with pytest.raises(SerializationError, match="meta"):
        echo.options(meta={"when": datetime.now(UTC)}).enqueue(1)


@pytest.mark.usefixtures("stored", "echo")
def test_enqueue_by_name_validates_args_and_kwargs(app: offload.App) -> None:
    with pytest.raises(SerializationError, match="args must be a JSON array"):
        app.enqueue("echo", args="not a list")  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="kwargs must be a JSON object"):
        app.enqueue("echo", kwargs=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="argument 0"):
        app.enqueue("echo", args=[{1, 2}])


@pytest.mark.usefixtures("stored", "echo")
def test_enqueue_by_name_refuses_non_str_kwargs_keys(app: offload.App) -> None:
    """The HTTP/CLI path hands decoded JSON to app.enqueue; a bad key is a SerializationError,
    not a TypeError from Python's ** unpacking."""
    with pytest.raises(SerializationError):
        app.enqueue("echo", kwargs={1: "one"})  # type: ignore[dict-item]


@pytest.mark.usefixtures("stored")
def test_payload_over_the_limit_is_refused(app: offload.App, echo: offload.Task[..., Any]) -> None:
    big = "x" * (1024 * 1024 + 1)
    with pytest.raises(PayloadTooLarge) as info:
        echo.enqueue(big)
    err = info.value
    assert (err.what, err.limit) == ("arguments", 1024 * 1024)
    assert err.size > err.limit
    assert str(err.size) in str(err)
    assert str(err.limit) in str(err)
    with pytest.raises(PayloadTooLarge):
        echo.enqueue_many([(1,), (big,)])
    with pytest.raises(PayloadTooLarge):
        echo.enqueue(part1="x" * 600_000, part2="y" * 600_000)


def test_payload_limit_is_configurable(db_url: str) -> None:
    small = offload.App(db_url, payload_limit=100, auto_migrate=True)
    try:

        @small.task(name="t")
        def t(x: str) -> None:
            return None

        t.enqueue("x" * 80)
        with pytest.raises(PayloadTooLarge, match="over the limit of 100 bytes"):
            t.enqueue("x" * 100)
        assert [job.args for job in small.jobs()] == [["x" * 80]]
    finally:
        small.close()


@pytest.mark.usefixtures("stored", "echo")
def test_unknown_task_is_refused_with_a_suggestion(app: offload.App) -> None:
    @app.task(name="noop")
    def noop() -> None:
        return None

    with pytest.raises(UnknownTask) as info:
        app.enqueue("nope")
    assert info.value.name == "nope"
    assert "unknown task 'nope'" in str(info.value)
    assert "did you mean 'noop'?" in str(info.value)
    with pytest.raises(UnknownTask) as info:
        app.enqueue("completely-different")
    assert "did you mean" not in str(info.value)


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize(
    "options",
    [
        {"delay": -1},
        {"delay": float("nan")},
        {"queue": ""},
        {"queue": "bad\nname"},
        {"queue": "q" * 201},
        {"priority": 5000},
        {"priority": 1.5},
        {"max_attempts": 0},
        {"at": datetime(2030, 1, 1)},  # naive
        {"delay": 1, "at": datetime(2030, 1, 1, tzinfo=UTC)},
    ],
    ids=str,
)
def test_bad_enqueue_options_are_refused(
    echo: offload.Task[..., Any], options: dict[str, Any]
) -> None:
    """Bad input to a call: a ValidationError (ConfigurationError is for declarations)."""
    with pytest.raises(ValidationError):
        echo.options(**options).enqueue(1)


# -- database URLs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        "jobs.db",
        "mysql://user@host/db",
        "sqlite://relative.db",
        "sqlite:///",
        "sqlite:///jobs.db?synchronous=sometimes",
        "sqlite:///jobs.db?busy_timeout=soon",
        "sqlite:///jobs.db?colour=blue",
        "postgresql://",
        "postgres://",
    ],
)
def test_malformed_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_backend(url)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigurationError):
        offload.App(url) if url else open_backend(url)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("sqlite:///jobs.db?max_size_mb=lots", "max_size_mb"),
        ("sqlite:///jobs.db?max_size_mb=0", "max_size_mb"),
        ("sqlite:///jobs.db?max_size_mb=-5", "max_size_mb"),
        ("postgresql://u@h/db?pool_mode=statement", "pool_mode"),
        ("postgresql://u:hunter2@h/db?connect_timeout=soon", "connect_timeout"),
        ("postgresql://u@h/db?connect_timeout=0", "connect_timeout"),
    ],
)
def test_outage_options_in_urls_are_checked(url: str, named: str) -> None:
    """The URL options of the outage issue: one line naming the option, no secret."""
    with pytest.raises(ConfigurationError) as info:
        open_backend(url)
    message = str(info.value)
    assert named in message and "\n" not in message and "hunter2" not in message, message


def test_a_size_cap_below_the_file_refuses_writes_and_keeps_every_job(
    tmp_path: Path,
) -> None:
    """max_size_mb smaller than the file: reads work, writes fail with StorageFull naming the
    file and its cap, and the stored jobs and the file stay intact."""
    path = tmp_path / "jobs.db"
    plain = offload.App(f"sqlite:///{path}")

    @plain.task(name="t")
    def t(x: str) -> str:
        return x

    ids = [h.id for h in t.enqueue_many([("x" * 5000,)] * 300)]
    plain.close()
    before = path.read_bytes()
    capped = offload.App(f"sqlite:///{path}?max_size_mb=0.5")
    capped.registry.add(plain.registry.get("t"))
    try:
        with pytest.raises(StorageFull) as info:
            for _ in range(300):
                capped.enqueue("t", ["y" * 5000])
        assert str(path) in str(info.value) and "max_page_count=" in str(info.value)
        assert [j.id for j in capped.jobs(limit=1000)] == sorted(ids, reverse=True)
    finally:
        capped.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(path.read_bytes()) == len(before)  # nothing grew past the cap


def test_password_is_redacted_from_url_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        open_backend("mysql://user:hunter2@host/db")
    assert "hunter2" not in str(info.value)


def test_unreachable_postgresql_is_one_line_naming_host_and_cause() -> None:
    url = "postgresql://postgres:s3cret@127.0.0.1:1/x"
    backend = open_backend(url)
    try:
        for call in (backend.schema.check, backend.schema.migrate, backend.now):
            with pytest.raises(BackendUnavailable) as info:
                call()
            message = str(info.value)
            assert "\n" not in message
            assert "127.0.0.1" in message
            assert "s3cret" not in message
            assert "refused" in message.lower(), message
            assert not message.rstrip().endswith(":"), message
            assert "\t" not in message, message
    finally:
        backend.close()
    app = offload.App(url)
    try:

        @app.task(name="t")
        def t() -> None:
            return None

        with pytest.raises(BackendUnavailable):
            t.enqueue()
    finally:
        app.close()


@contextlib.contextmanager
def _password_role(server: PostgresServer) -> Iterator[str]:
    """A role that must log in with the password 'right' over TCP: the throwaway cluster
    trusts everyone, so its pg_hba.conf gets one line for this role, first."""
    assert server.data_dir is not None
    role = f"offload_pw_{os.getpid()}"
    hba = server.data_dir / "pg_hba.conf"
    original = hba.read_bytes()
    with psycopg.connect(server.url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'right'".encode())
        try:
            hba.write_bytes(f"host all {role} 127.0.0.1/32 scram-sha-256\n".encode() + original)
            admin.execute("SELECT pg_reload_conf()")
            without_password = server.url.replace("postgres@", f"{role}@", 1)
            deadline = time.monotonic() + 10
            while True:  # the reload is asynchronous: wait until trust no longer applies
                try:
                    psycopg.connect(without_password, connect_timeout=5).close()
                except psycopg.OperationalError:
                    break
                assert time.monotonic() < deadline, "pg_hba.conf was not reloaded"
                time.sleep(0.05)
            yield role
        finally:
            hba.write_bytes(original)
            admin.execute("SELECT pg_reload_conf()")
            admin.execute(f"DROP ROLE {role}".encode())


def test_a_wrong_password_is_one_line_and_one_attempt_per_call(pg_server: PostgresServer) -> None:
    if not pg_server.owned or pg_server.log_file is None:
        pytest.skip("edits the pg_hba.conf of the throwaway cluster; the server is external")
    log = pg_server.log_file
    with _password_role(pg_server) as role:
        url = pg_server.url.replace("postgres@", f"{role}:wr0ng@", 1)
        rejected = f'password authentication failed for user "{role}"'
        before = log.read_text(errors="replace").count(rejected)
        app = offload.App(url)
        try:

            @app.task(name="t")
            def t() -> None:
                return None

            calls: list[Callable[[], object]] = [app.jobs, t.enqueue, app.migrate]
            for call in calls:
                with pytest.raises(BackendUnavailable) as info:
                    call()
                message = str(info.value)
                assert "\n" not in message
                assert rejected in message, message
                assert "wr0ng" not in message and f"{role}:***@" in message, message
        finally:
            app.close()
        time.sleep(0.5)  # a pool retrying in the background would log more failures
        assert log.read_text(errors="replace").count(rejected) - before == len(calls)
