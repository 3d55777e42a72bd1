"""The rig's own Redis and PostgreSQL servers, on free loopback ports, with known settings.

Never the machine's services on the standard ports: each run starts its own.

* Redis: Debian's `redis-server` binary, in a temporary directory, with the append-only
  file on (`appendfsync everysec`; `set_appendfsync("always")` switches it for the rows that
  ask) and RDB snapshots off (`save ""`), so that the AOF is the only persistence and no
  background snapshot lands in a measurement.
* PostgreSQL: a throwaway cluster from `tests.pgserver.start_postgres` (initdb as an
  unprivileged user, loopback, trust), made durable: that helper starts with fsync=off for
  the test suite, so the rig sets `fsync`, `synchronous_commit` and `full_page_writes` back
  on with ALTER SYSTEM and reloads, then reads them back with SHOW (printed above the table).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.peers.resp import command

PG_DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
PG_SHOWN = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "commit_delay",
    "shared_buffers",
    "max_connections",
)
REDIS_SHOWN = ("appendonly", "appendfsync", "save", "maxmemory")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Redis:
    """A private redis-server on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install redis-server")
        self.dir = Path(tempfile.mkdtemp(prefix="peers-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = self.dir / "redis.log"
        options = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "dir": str(self.dir),
            "appendonly": "yes",
            "appendfsync": "everysec",
            "save": "",
            "daemonize": "no",
            "logfile": str(self.log),
        }
        self.proc = subprocess.Popen(
            [binary, *(arg for key, value in options.items() for arg in (f"--{key}", value))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if command(self.url, "PING") == "PONG":
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start; see {self.log}")
            time.sleep(0.1)
        info = command(self.url, "INFO", "server")
        versions = [line for line in info.splitlines() if line.startswith("redis_version:")]
        self.version = versions[0].split(":", 1)[1].strip() if versions else "?"

    def set_appendfsync(self, mode: str) -> None:
        command(self.url, "CONFIG", "SET", "appendfsync", mode)

    def settings(self) -> dict[str, str]:
        found = {"version": self.version, "url": self.url}
        for key in REDIS_SHOWN:
            reply = command(self.url, "CONFIG", "GET", key)
            found[key] = repr(reply[1]) if key == "save" else str(reply[1])
        return found

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            command(self.url, "SHUTDOWN", "NOSAVE", timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Postgres:
    """A private, durable PostgreSQL cluster (see the module docstring)."""

    def __init__(self) -> None:
        import psycopg
        from tests import pgserver

        # start_postgres() would reuse an external server named by this variable: the rig
        # measures only its own, so it is ignored here.
        saved = os.environ.pop(pgserver.ENV_URL, None)
        try:
            self.server: Any = pgserver.start_postgres()
        finally:
            if saved is not None:
                os.environ[pgserver.ENV_URL] = saved
        self.url: str = self.server.url
        with psycopg.connect(self.url, autocommit=True) as conn:
            for key, value in PG_DURABLE.items():
                conn.execute(f"ALTER SYSTEM SET {key} = '{value}'".encode())
            conn.execute(b"SELECT pg_reload_conf()")
        time.sleep(0.5)
        found = self.settings()
        wrong = {k: found[k] for k, v in PG_DURABLE.items() if found.get(k) != v}
        if wrong:
            self.stop()
            raise RuntimeError(f"PostgreSQL did not take the durable settings: {wrong}")
        self.version = found["server_version"]

    def settings(self) -> dict[str, str]:
        import psycopg

        found = {"url": self.url}
        with psycopg.connect(self.url, autocommit=True) as conn:
            for key in PG_SHOWN:
                row = conn.execute(f"SHOW {key}".encode()).fetchone()
                found[key] = str(row[0]) if row else "?"
        return found

    def stop(self) -> None:
        self.server.stop()
