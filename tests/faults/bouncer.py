"""PgBouncer (Debian's package) in front of a test server, in session or transaction mode."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.pgserver.processes import as_user, ensure_unprivileged_user

CONFIG = """
[databases]
* = host={upstream_host} port={upstream}

[pgbouncer]
listen_addr = {host}
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/users.txt
pool_mode = {mode}
max_client_conn = 500
default_pool_size = {pool_size}
ignore_startup_parameters = extra_float_digits
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
"""


class Bouncer:
    """A running PgBouncer; `url(server_url)` points a server's URL at it.

    It listens on `host` (127.0.0.1 by default; tests/hosts: a bridge's address) and lends
    at most `pool_size` server connections per database and user.
    """

    def __init__(
        self,
        upstream: int,
        mode: str,
        *,
        host: str = "127.0.0.1",
        upstream_host: str = "127.0.0.1",
        pool_size: int = 10,
    ) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            raise RuntimeError("pgbouncer is not installed: scripts/test installs it (Debian)")
        self.mode = mode
        self.dir = Path(tempfile.mkdtemp(prefix="offload-pgbouncer-"))
        with socket.socket() as probe:
            probe.bind((host, 0))
            self.port: int = probe.getsockname()[1]
        (self.dir / "users.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            CONFIG.format(
                upstream=upstream,
                upstream_host=upstream_host,
                host=host,
                port=self.port,
                dir=self.dir,
                mode=mode,
                pool_size=pool_size,
            )
        )
        user = ensure_unprivileged_user() if os.geteuid() == 0 else None
        if user is not None:
            os.chmod(self.dir, 0o755)
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.process = subprocess.Popen(
            as_user([binary, str(self.dir / "pgbouncer.ini")], user),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((host, self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.close()
                    raise RuntimeError(f"pgbouncer did not start: {self.log()}") from None
                time.sleep(0.05)

    def url(self, url: str, upstream: int) -> str:
        return url.replace(f":{upstream}/", f":{self.port}/", 1)

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
