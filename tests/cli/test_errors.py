"""Configuration and usage errors: one `error:` line, no traceback, the right exit code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.helpers import APP, UNREACHABLE_PG, assert_one_line_error, base_env, offload_cli


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("not-a-url", "malformed database URL 'not-a-url'"),
        ("sqlite://jobs.db", "malformed SQLite URL"),
        ("mysql://localhost/x", "unsupported database URL scheme 'mysql'"),
        (UNREACHABLE_PG, "cannot connect to postgresql://postgres@127.0.0.1:1/x"),
    ],
)
@pytest.mark.parametrize("command", [["jobs"], ["migrate"], ["enqueue", "noop"]])
def test_a_bad_database_url_is_one_line(url: str, fragment: str, command: list[str]) -> None:
    result = offload_cli(*command, env=base_env(OFFLOAD_APP=APP, OFFLOAD_URL=url))
    assert_one_line_error(result, 1, fragment)


def test_a_multi_line_error_message_is_printed_on_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text(
        "import offload\nraise offload.ConfigurationError('first problem\\n  second problem\\n')\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "offload.cli", "--app", "broken_app:app", "jobs"],
        check=False,
        cwd=tmp_path,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line_error(result, 1)
    assert result.stderr == "error: first problem; second problem\n"


def test_commands_need_an_app() -> None:
    result = offload_cli("jobs", env=base_env())
    assert_one_line_error(result, 1, "no app given", "--app", "OFFLOAD_APP")
    missing = offload_cli("--app", "tests.apps.nothing:app", "jobs", env=base_env())
    assert_one_line_error(missing, 1, "cannot import 'tests.apps.nothing'")


def test_usage_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    env = base_env(OFFLOAD_APP=APP, OFFLOAD_URL=f"sqlite:///{tmp_path / 'jobs.db'}")
    assert_one_line_error(offload_cli("jobs", "--state", "nope", env=env), 2, "'nope'")
    assert_one_line_error(offload_cli("status", env=env), 2, "Missing argument 'ID'")
    assert_one_line_error(offload_cli("bogus", env=env), 2, "No such command 'bogus'")
    help_text = offload_cli("--help", env=env)
    assert help_text.returncode == 0
    for command in ("worker", "enqueue", "status", "jobs", "retry", "cancel", "queues"):
        assert re.search(rf"^\s+{command}\s", help_text.stdout, re.MULTILINE), command
