"""RELIABILITY 36, secrets: a sentinel password in the database URL never shows in an
exception (message, repr, traceback, chained causes), a log record, or the CLI's output.

The URL carries it as `user:password@`, as a `?password=` parameter, or both. Against a
closed port every step fails (App, enqueue, migrate, worker, each CLI command); against the
test server, a role with that password runs the whole life of jobs, a task failure and a
storage error. Each check also finds the redacted location (`***`) where a message names
the database, so it cannot pass by saying nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

import offload
from offload.backends import open_backend, redact
from offload.core.errors import BackendError, OffloadError
from tests.cli.helpers import APP, base_env, offload_cli
from tests.pgserver import PostgresServer, fresh_database

SENTINEL = "S3NT1NEL-xyz"
ROLE = f"offload_sentinel_{os.getpid()}"
COMMANDS = [
    ["migrate"],
    ["enqueue", "noop"],
    ["enqueue", "fail"],
    ["worker", "--burst", "--concurrency", "1", "--log-level", "DEBUG"],
    ["status", "1"],
    ["status", "2"],
    ["jobs"],
    ["workers"],
    ["queues"],
    ["cron", "list"],
]


def _url_forms(host: str, port: int, database: str) -> list[str]:
    where = f"{host}:{port}/{database}"
    return [
        f"postgresql://{ROLE}:{SENTINEL}@{where}",
        f"postgresql://{ROLE}@{where}?password={SENTINEL}&application_name=t",
        f"postgres://{ROLE}:{quote(SENTINEL, safe='')}@{where}?sslpassword={SENTINEL}",
    ]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: connections are refused


def assert_clean(text: str) -> None:
    assert SENTINEL not in text, text
    assert quote(SENTINEL, safe="") not in text, text


def told(exc: BaseException) -> str:
    """Everything an exception can show: message, repr, traceback, and its whole chain
    (causes a traceback would hide included)."""
    said = "".join(traceback.format_exception(exc))
    seen: BaseException | None = exc
    while seen is not None:
        said += f"\n{seen}\n{seen!r}\n{seen.args!r}"
        seen = seen.__cause__ or seen.__context__
    return said


def raised(call: Callable[[], Any]) -> str:
    """What `call` showed when it failed, as it must; an OffloadError, never a bare one."""
    with pytest.raises(OffloadError) as info:
        call()
    return told(info.value)


def logged(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


def test_redact_hides_every_password_form() -> None:
    for url in _url_forms("db.example", 5432, "jobs"):
        shown = redact(url)
        assert_clean(shown)
        assert "***" in shown and "db.example:5432/jobs" in shown, shown
    assert redact("postgresql:///jobs?host=/run/pg") == "postgresql:///jobs?host=/run/pg"
    assert redact(f"host=h password={SENTINEL} user=u") == "host=h password=*** user=u"
    assert redact(f"host=h password = '{SENTINEL} x'") == "host=h password = ***"
    assert_clean(redact(f"postgresql://u:{SENTINEL}@[::1/db"))


@pytest.mark.parametrize(
    "url", _url_forms("127.0.0.1", _closed_port(), "offload"), ids=["user", "query", "encoded"]
)
def test_unreachable_database_never_shows_the_password(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = offload.App(url)
    try:
        shown = f"{app!r} {app.backend!r} {app.backend.location}"
        assert "***" in shown
        noop = app.task(name="noop")(lambda: None)
        said = [shown, raised(noop.enqueue), raised(app.migrate), raised(app.jobs)]

        def work() -> int:
            return app.worker(executor="thread", burst=True, install_signals=False).run()

        said.append(raised(work))
        for text in said[1:]:
            assert "***@" in text or "password=***" in text, text
        said.append(logged(caplog))
        for text in said:
            assert_clean(text)
    finally:
        app.close()
    # Not a URL offload takes: refused, still without the password.
    assert_clean(raised(lambda: open_backend("mysql://" + url.split("://", 1)[1])))
    assert_clean(raised(lambda: open_backend(f"host=127.0.0.1 user={ROLE} password={SENTINEL}")))


@pytest.mark.parametrize("form", [0, 1])
def test_cli_against_an_unreachable_database_never_shows_the_password(form: int) -> None:
    url = _url_forms("127.0.0.1", _closed_port(), "offload")[form]
    for command in COMMANDS:
        result = offload_cli(*command, env=base_env(OFFLOAD_APP=APP, OFFLOAD_URL=url))
        assert result.returncode != 0, (command, result.stdout)
        assert "***" in result.stderr, (command, result.stderr)
        assert_clean(result.stdout + result.stderr)


def _admin(url: str, *statements: sql.Composed) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def secret_urls(pg_server: PostgresServer) -> Iterator[list[str]]:
    """A role whose password is the sentinel, owning a fresh database; its URLs."""
    admin, name = pg_server.url, f"{ROLE}_db"
    role, database = sql.Identifier(ROLE), sql.Identifier(name)
    drop = [
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database),
        sql.SQL("DROP ROLE IF EXISTS {}").format(role),
    ]
    _admin(
        admin,
        *drop,
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(SENTINEL)),
    )
    fresh_database(admin, name)
    _admin(admin, sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, role))
    params = conninfo_to_dict(admin)
    yield _url_forms(str(params.get("host", "127.0.0.1")), int(str(params.get("port", 5432))), name)
    _admin(admin, *drop)


def test_a_working_database_never_shows_the_password(
    secret_urls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = offload.App(secret_urls[0])
    try:
        app.migrate()

        @app.task(name="fails", max_attempts=1)
        def fails() -> None:
            raise ValueError("task failed on purpose")

        @app.task(name="ok")
        def ok() -> int:
            return 42

        done, broken = ok.enqueue(), fails.enqueue()
        assert app.worker(executor="thread", burst=True, install_signals=False).run() == 0
        assert done.result(timeout=10) == 42
        failed = broken.job()
        assert failed.errors[-1]["message"] == "task failed on purpose"
        said = [repr(app), repr(failed), str(app.jobs()), str(app.worker_statuses())]
        # A storage error names the database: redacted.
        raw = psycopg.connect(secret_urls[0], autocommit=True)
        raw.execute("ALTER TABLE offload_jobs RENAME TO offload_jobs_away")
        try:
            with pytest.raises(BackendError) as info:
                ok.enqueue()
        finally:
            raw.execute("ALTER TABLE offload_jobs_away RENAME TO offload_jobs")
            raw.close()
        assert "***" in str(info.value)
        said += [told(info.value), logged(caplog)]
        assert "worker" in said[-1]
        for text in said:
            assert_clean(text)
    finally:
        app.close()


def test_cli_against_a_working_database_never_shows_the_password(secret_urls: list[str]) -> None:
    for url in secret_urls[:2]:
        env = base_env(OFFLOAD_APP=APP, OFFLOAD_URL=url)
        for command in COMMANDS:
            result = offload_cli(*command, env=env)
            assert result.returncode == 0, (command, result.stderr)
            assert_clean(result.stdout + result.stderr)
            if command[0] == "worker":
                assert "on queues" in result.stderr, result.stderr
        assert "***" in offload_cli("migrate", env=env).stdout
