"""Starting and stopping a throwaway PostgreSQL cluster (or wrapping an external server)."""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import psycopg

from tests.pgserver.binaries import ENV_URL, find_pg_bindir
from tests.pgserver.processes import (
    as_user,
    child_env,
    ensure_unprivileged_user,
    make_base_dir,
    run_checked,
)

_PORT_ATTEMPTS = 5
_SERVER_CONF = """
# --- added by tests/pgserver: throwaway test cluster, durability off ---
listen_addresses = '{listen}'
unix_socket_directories = '{socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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

    def _pg_ctl(self, *args: str, timeout: float = 60.0) -> None:
        if not self.owned or self.bindir is None or self.data_dir is None or not self.base_dir:
            raise RuntimeError("only a server these tests started can be stopped and started")
        run_checked(
            as_user([str(self.bindir / "pg_ctl"), *args, "-D", str(self.data_dir)], self._user),
            what=f"pg_ctl {args[0]}",
            cwd=self.base_dir,
            timeout=timeout,
        )

    def halt(self, mode: str = "fast") -> None:
        """Stop the server and keep its files (``pg_ctl stop -m fast|immediate``): an
        outage, which `start` ends."""
        self._pg_ctl("stop", "-m", mode, "-w", "-t", "30")

    def start(self) -> None:
        """Start a halted server again, on the same port, and wait until it accepts."""
        assert self.log_file is not None
        self._pg_ctl(
            "start",
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port}",
            timeout=90,
        )
        _wait_until_accepting(self, 60.0)

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
                    as_user(
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
                    env=child_env(),
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


def start_postgres(
    *,
    timeout: float = 60.0,
    durable_commits: bool = False,
    also_listen: Sequence[str] = (),
    trust_networks: Sequence[str] = (),
) -> PostgresServer:
    """Start a throwaway cluster, or wrap ``$OFFLOAD_TEST_POSTGRES_URL`` if it is set.

    The returned server is ready to accept connections.  Call ``stop()`` when done (an
    ``atexit`` hook also stops it, as a backstop).  Raises RuntimeError on any failure.
    ``also_listen`` adds addresses besides 127.0.0.1 (tests/hosts: a bridge to network
    namespaces) and ``trust_networks`` the CIDRs allowed in without a password; both need
    the throwaway cluster, so they refuse ``$OFFLOAD_TEST_POSTGRES_URL``.
    """
    external = os.environ.get(ENV_URL, "").strip()
    if external and (also_listen or trust_networks):
        raise RuntimeError(
            f"{ENV_URL} is set, but these tests need a cluster listening on "
            f"{', '.join(also_listen)}: unset it"
        )
    if external:
        return PostgresServer(external, owned=False)

    bindir = find_pg_bindir()
    user = ensure_unprivileged_user() if os.geteuid() == 0 else None
    base = make_base_dir(user)
    server: PostgresServer | None = None
    try:
        data_dir = base / "data"
        run_checked(
            as_user(
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
            conf.write(
                _SERVER_CONF.format(
                    socket_dir=str(base).replace("'", "''"),
                    listen=",".join(("127.0.0.1", *also_listen)),
                )
            )
            if durable_commits:  # a commit is acknowledged once its WAL is written: an
                # immediate stop (no OS crash, so fsync may stay off) loses none
                conf.write("synchronous_commit = on\n")
        with (data_dir / "pg_hba.conf").open("a") as hba:
            hba.writelines(f"host all all {network} trust\n" for network in trust_networks)

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
            cmd = as_user(
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
                env=child_env(),
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
