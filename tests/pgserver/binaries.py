"""Finding the PostgreSQL server binaries (``initdb``, ``pg_ctl``, ``postgres``)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path

ENV_URL = "OFFLOAD_TEST_POSTGRES_URL"
"""Environment variable naming an existing server to use instead of starting one."""

_DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")


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
