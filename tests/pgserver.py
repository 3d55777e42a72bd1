"""A throwaway PostgreSQL cluster for the test session.

Usage from a conftest::

    from tests.pgserver import fresh_database, start_postgres

    server = start_postgres()          # or reuse OFFLOAD_TEST_POSTGRES_URL
    url = fresh_database(server.url, "offload_test_x")
    ...
    server.stop()

If the environment variable ``OFFLOAD_TEST_POSTGRES_URL`` is set, that URL is used as is and
no server is started.  Otherwise a private cluster is created with ``initdb`` in a temporary
directory and started on a free loopback TCP port (never the system server on 5432).  When
running as root the cluster runs as an unprivileged user (``postgres`` if it exists, else a
system user ``offload-test`` that is created on demand), because PostgreSQL refuses to run as
root.  Any failure raises ``RuntimeError``: callers must let tests fail, never skip.

Smoke check: ``python -m tests.pgserver`` (or ``python tests/pgserver.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = [
    "ENV_URL",
    "PostgresServer",
    "database_url",
    "find_pg_bindir",
    "fresh_database",
    "main",
    "start_postgres",
]

ENV_URL = "OFFLOAD_TEST_POSTGRES_URL"
"""Environment variable naming an existing server to use instead of starting one."""

FALLBACK_USER = "offload-test"
"""System user created (as root) when no ``postgres`` user exists."""

_DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
_MAX_DB_NAME_BYTES = 63
_PORT_ATTEMPTS = 5
_SERVER_CONF = """
# --- added by tests/pgserver.py: throwaway test cluster, durability off ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
"""


# --------------------------------------------------------------------------- binaries


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort key for /usr/lib/postgresql/<version>: numeric, unknown versions last."""
    parts = re.findall(r"\d+", path.name)
    return tuple(int(p) for p in parts) if parts else (-1,)


def _has_server_binaries(bindir: Path) -> bool:
    return all(
        (bindir / name).is_file() and os.access(bindir / name, os.X_OK)
        for name in ("initdb", "pg_ctl", "postgres")
    )


def find_pg_bindir() -> Path:
    """Return the directory holding the real ``initdb``/``pg_ctl``/``postgres`` binaries.

    Order: ``pg_config --bindir``; the newest ``/usr/lib/postgresql/*/bin`` (Debian layout);
    finally the directory of an ``initdb`` found on PATH (symlinks resolved, so Debian wrapper
    links in /usr/local/bin lead back to the real binaries).  Raises RuntimeError if none has
    the server binaries.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
                stdin=subprocess.DEVNULL,
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    if _DEBIAN_PG_ROOT.is_dir():
        versions = sorted(
            (p for p in _DEBIAN_PG_ROOT.iterdir() if (p / "bin").is_dir()),
            key=_version_key,
            reverse=True,
        )
        candidates.extend(p / "bin" for p in versions)
    initdb_on_path = shutil.which("initdb")
    if initdb_on_path is not None:
        candidates.append(Path(initdb_on_path).resolve().parent)

    for bindir in candidates:
        if _has_server_binaries(bindir):
            return bindir
    tried = ", ".join(str(c) for c in candidates) or "none"
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found "
        f"(looked in: {tried}). Install them (Debian: apt-get install postgresql) or set "
        f"{ENV_URL} to the URL of a server to test against."
    )


# --------------------------------------------------------------------------- users


def _ensure_unprivileged_user() -> pwd.struct_passwd:
    """As root: the ``postgres`` user if present, else ``offload-test`` (created if needed)."""
    for name in ("postgres", FALLBACK_USER):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    shell = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", shell, FALLBACK_USER],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    try:
        return pwd.getpwnam(FALLBACK_USER)
    except KeyError:
        raise RuntimeError(
            "PostgreSQL refuses to run as root and no 'postgres' user exists; creating "
            f"user {FALLBACK_USER!r} with useradd failed (exit {result.returncode}): "
            f"{result.stderr.strip()}"
        ) from None


def _as_user(cmd: list[str], user: pwd.struct_passwd | None) -> list[str]:
    """Wrap ``cmd`` so that it runs as ``user`` (None: run directly)."""
    if user is None:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", user.pw_name, "--", *cmd]
    if shutil.which("setpriv"):
        return [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--init-groups",
            "--",
            *cmd,
        ]
    if shutil.which("su"):
        return ["su", "-s", "/bin/sh", user.pw_name, "-c", shlex.join(cmd)]
    raise RuntimeError("running as root but none of runuser, setpriv, su is available")


def _traversable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """True if every directory from / down to ``path`` can be entered by ``user``."""
    for directory in (path, *path.parents):
        try:
            st = directory.stat()
        except OSError:
            return False
        if st.st_uid == user.pw_uid:
            if not st.st_mode & stat.S_IXUSR:
                return False
        elif st.st_gid == user.pw_gid:
            if not st.st_mode & stat.S_IXGRP:
                return False
        elif not st.st_mode & stat.S_IXOTH:
            return False
    return True


def _make_base_dir(user: pwd.struct_passwd | None) -> Path:
    parent = Path(tempfile.gettempdir()).resolve()
    # The Unix socket path (<dir>/.s.PGSQL.<port>) must fit in ~107 bytes, and the server
    # user must be able to reach the directory.
    if len(str(parent)) > 60 or (user is not None and not _traversable_by(parent, user)):
        parent = Path("/tmp")
    base = Path(tempfile.mkdtemp(prefix="offload-pg-", dir=parent))
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
    return base


# --------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _child_env() -> dict[str, str]:
    """The environment for initdb/pg_ctl: no PG* variables that could redirect them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.pop("LANGUAGE", None)
    return env


class PostgresServer:
    """A PostgreSQL server for tests: either one we started, or an external URL.

    Attributes:
        url: libpq URL of the ``postgres`` database as superuser ``postgres``.
        owned: True if this object started the server (and ``stop()`` will destroy it).
        base_dir: temporary directory holding data dir, socket and log (owned servers only).
        data_dir: the cluster's data directory (owned servers only).
        port: TCP port on 127.0.0.1 (owned servers only).
        run_as: name of the OS user the server runs as, None if it runs as the current user
            or is external.
    """

    def __init__(
        self,
        url: str,
        *,
        owned: bool = False,
        base_dir: Path | None = None,
        port: int | None = None,
        bindir: Path | None = None,
        run_as: pwd.struct_passwd | None = None,
    ) -> None:
        self.url = url
        self.owned = owned
        self.base_dir = base_dir
        self.data_dir = base_dir / "data" if base_dir is not None else None
        self.log_file = base_dir / "postgres.log" if base_dir is not None else None
        self.port = port
        self.bindir = bindir
        self._user = run_as
        self.run_as = run_as.pw_name if run_as is not None else None
        self._stopped = not owned

    def __repr__(self) -> str:
        return f"PostgresServer(url={self.url!r}, owned={self.owned})"

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log ('' if there is none)."""
        if self.log_file is None:
            return ""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop -m immediate``) and delete its files.

        Idempotent; a no-op for an external server.
        """
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        try:
            if self.bindir is not None and self.data_dir is not None and self.data_dir.exists():
                result = subprocess.run(
                    _as_user(
                        [
                            str(self.bindir / "pg_ctl"),
                            "stop",
                            "-D",
                            str(self.data_dir),
                            "-m",
                            "immediate",
                            "-w",
                            "-t",
                            "30",
                        ],
                        self._user,
                    ),
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                    cwd=self.base_dir,
                    env=_child_env(),
                    stdin=subprocess.DEVNULL,
                )
                if result.returncode != 0:
                    self._kill_postmaster()
        finally:
            if self.base_dir is not None:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        """Fallback when pg_ctl stop failed: SIGQUIT (immediate shutdown), then SIGKILL."""
        if self.data_dir is None:
            return
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        for sig, wait in ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)


def _run_checked(
    cmd: list[str], *, what: str, cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
            env=_child_env(),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{what} timed out after {timeout:.0f}s: {shlex.join(cmd)}") from exc
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {result.returncode}): {shlex.join(cmd)}\n"
            f"stdout:\n{result.stdout.strip()}\nstderr:\n{result.stderr.strip()}"
        )
    return result


def _wait_until_accepting(server: PostgresServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            with psycopg.connect(server.url, connect_timeout=5, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.Error as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"PostgreSQL at {server.url} did not accept connections within "
                f"{timeout:.0f}s (last error: {last_error}).\n"
                f"Server log tail ({server.log_file}):\n{server.log_tail()}"
            )
        time.sleep(0.2)


def start_postgres(*, timeout: float = 60.0) -> PostgresServer:
    """Start a throwaway cluster, or wrap ``$OFFLOAD_TEST_POSTGRES_URL`` if it is set.

    The returned server is ready to accept connections.  Call ``stop()`` when done (an
    ``atexit`` hook also stops it, as a backstop).  Raises RuntimeError on any failure.
    """
    external = os.environ.get(ENV_URL, "").strip()
    if external:
        return PostgresServer(external, owned=False)

    bindir = find_pg_bindir()
    user = _ensure_unprivileged_user() if os.geteuid() == 0 else None
    base = _make_base_dir(user)
    server: PostgresServer | None = None
    try:
        data_dir = base / "data"
        _run_checked(
            _as_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                user,
            ),
            what="initdb",
            cwd=base,
            timeout=180,
        )
        with (data_dir / "postgresql.conf").open("a") as conf:
            conf.write(_SERVER_CONF.format(socket_dir=str(base).replace("'", "''")))

        last_failure = ""
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            server = PostgresServer(
                f"postgresql://postgres@127.0.0.1:{port}/postgres",
                owned=True,
                base_dir=base,
                port=port,
                bindir=bindir,
                run_as=user,
            )
            atexit.register(server.stop)
            cmd = _as_user(
                [
                    str(bindir / "pg_ctl"),
                    "start",
                    "-D",
                    str(data_dir),
                    "-l",
                    str(server.log_file),
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-o",
                    f"-p {port}",
                ],
                user,
            )
            result = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout + 30,
                check=False,
                cwd=base,
                env=_child_env(),
                stdin=subprocess.DEVNULL,
            )
            if result.returncode == 0:
                _wait_until_accepting(server, timeout)
                return server
            log = server.log_tail()
            last_failure = (
                f"pg_ctl start failed (exit {result.returncode}): {shlex.join(cmd)}\n"
                f"{result.stdout.strip()}\n{result.stderr.strip()}\n"
                f"Server log tail ({server.log_file}):\n{log}"
            )
            if "Address already in use" not in log and "could not bind" not in log:
                break
            # Port taken between probing and binding: make sure nothing runs, try another.
            server._kill_postmaster()
            atexit.unregister(server.stop)
            if server.log_file is not None:
                with contextlib.suppress(OSError):
                    server.log_file.unlink()
        raise RuntimeError(last_failure or "pg_ctl start failed")
    except BaseException:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- databases


def database_url(url: str, name: str) -> str:
    """``url`` with its database replaced by ``name`` (URL or key=value conninfo)."""
    if "://" not in url:
        return make_conninfo(url, dbname=name)
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "dbname"])
    return urlunsplit(parts._replace(path="/" + quote(name, safe=""), query=query))


def fresh_database(url: str, name: str) -> str:
    """(Re)create an empty database ``name`` on the server of ``url``; return its URL.

    Runs ``DROP DATABASE IF EXISTS name WITH (FORCE)`` (terminating any sessions on it)
    then ``CREATE DATABASE name`` from template0, connected in autocommit mode.
    """
    if not name or len(name.encode()) > _MAX_DB_NAME_BYTES:
        raise ValueError(f"database name must be 1..{_MAX_DB_NAME_BYTES} bytes: {name!r}")
    if name in ("postgres", "template0", "template1"):
        raise ValueError(f"refusing to recreate system database {name!r}")
    admin_url = url
    if conninfo_to_dict(url).get("dbname") == name:
        admin_url = make_conninfo(url, dbname="postgres")
    ident = sql.Identifier(name)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=30) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(ident))
    return database_url(url, name)


# --------------------------------------------------------------------------- smoke check


def main() -> int:
    """Start a server, print its URL and version, check fresh_database, stop."""
    started = time.monotonic()
    with start_postgres() as server:
        print(f"url: {server.url}")
        print(f"owned: {server.owned}  run_as: {server.run_as}  data_dir: {server.data_dir}")
        with psycopg.connect(server.url, autocommit=True) as conn:
            row = conn.execute("SELECT version()").fetchone()
        print(f"version: {row[0] if row else '?'}")
        db_url = fresh_database(server.url, "offload_pgserver_smoke")
        with psycopg.connect(db_url, autocommit=True) as conn:
            row = conn.execute("SELECT current_database()").fetchone()
        print(f"fresh_database: {db_url} -> {row[0] if row else '?'}")
    print(f"stopped; took {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
