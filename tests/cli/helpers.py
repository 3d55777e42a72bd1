"""Running `python -m offload.cli` as a subprocess and checking what it printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.apps.basic:app"
UNREACHABLE_PG = "postgresql://postgres@127.0.0.1:1/x"


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any OFFLOAD_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env.update(extra)
    return env


def offload_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m offload.cli ARGS` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "offload.cli", *args],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int, *fragments: str
) -> None:
    """The command failed with `code` and a single `error:` line naming each fragment."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def run_json(*args: str, env: dict[str, str]) -> Any:
    result = offload_cli(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)
