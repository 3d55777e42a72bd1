"""Running the PostgreSQL programs: as which OS user, in which directory, with which environment.

PostgreSQL refuses to run as root, so as root every program runs as an unprivileged user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

FALLBACK_USER = "offload-test"
"""System user created (as root) when no ``postgres`` user exists."""


def ensure_unprivileged_user() -> pwd.struct_passwd:
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


def as_user(cmd: list[str], user: pwd.struct_passwd | None) -> list[str]:
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


def make_base_dir(user: pwd.struct_passwd | None) -> Path:
    parent = Path(tempfile.gettempdir()).resolve()
    # The Unix socket path (<dir>/.s.PGSQL.<port>) must fit in ~107 bytes, and the server
    # user must be able to reach the directory.
    if len(str(parent)) > 60 or (user is not None and not _traversable_by(parent, user)):
        parent = Path("/tmp")
    base = Path(tempfile.mkdtemp(prefix="offload-pg-", dir=parent))
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
    return base


def child_env() -> dict[str, str]:
    """The environment for initdb/pg_ctl: no PG* variables that could redirect them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.pop("LANGUAGE", None)
    return env


def run_checked(
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
            env=child_env(),
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
