"""Configuration and usage errors: one `error:` line, no traceback, the right exit code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.apps import basic
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


def run_in(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with `tmp_path` as the current directory (where the app's package is)."""
    return subprocess.run(
        [sys.executable, "-m", "offload", *args],
        check=False,
        cwd=tmp_path,
        env=base_env(OFFLOAD_URL=f"sqlite:///{tmp_path / 'jobs.db'}"),
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_app(tmp_path: Path, body: str) -> None:
    package = tmp_path / "myproject"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("def load():\n    import requests_nope\n")
    (package / "jobs.py").write_text(body)


@pytest.mark.parametrize(
    ("body", "first_line", "last_line"),
    [
        (
            "import offload\nfrom myproject.helpers import load\nload()\n",
            "error: importing 'myproject.jobs' failed: ModuleNotFoundError: "
            "No module named 'requests_nope'",
            "ModuleNotFoundError: No module named 'requests_nope'",
        ),
        (
            "import offload\napp = offload.App(\ndef broken(:\n",
            "error: importing 'myproject.jobs' failed: SyntaxError: ",
            "SyntaxError: invalid syntax",
        ),
        (
            "import offload\nraise RuntimeError('no settings')\n",
            "error: importing 'myproject.jobs' failed: RuntimeError: no settings",
            "RuntimeError: no settings",
        ),
    ],
    ids=["missing package", "syntax error", "exception"],
)
def test_an_app_that_fails_to_import_shows_its_own_frames(
    tmp_path: Path, body: str, first_line: str, last_line: str
) -> None:
    write_app(tmp_path, body)
    result = run_in(tmp_path, "--app", "myproject.jobs:app", "jobs")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.rstrip().splitlines()
    assert lines[0].startswith(first_line), lines
    assert lines[-1].startswith(last_line), lines
    assert "myproject/jobs.py" in result.stderr
    # Only the user's frames: none of offload's, none of importlib's.
    assert "offload/" not in result.stderr.replace("myproject", "")
    assert "importlib" not in result.stderr
    # With -v the whole traceback, offload's frames included.
    full = run_in(tmp_path, "-v", "--app", "myproject.jobs:app", "jobs")
    assert full.returncode == 1
    assert full.stderr.splitlines()[0] == lines[0]
    assert "offload/runtime/loader.py" in full.stderr


@pytest.mark.parametrize(
    ("given", "suggested"),
    [
        ("myproject/jobs.py", "myproject.jobs?"),
        ("myproject/jobs.py:app", "myproject.jobs:app?"),
        ("./myproject/jobs.py:other", "myproject.jobs:other?"),
        ("jobs.py", "jobs?"),
    ],
)
def test_a_file_path_for_the_app_suggests_the_module_name(
    tmp_path: Path, given: str, suggested: str
) -> None:
    result = run_in(tmp_path, "--app", given, "jobs")
    assert_one_line_error(result, 1, f"{given!r} is a file path", f"did you mean {suggested}")


def test_an_unexpected_exception_is_one_line_unless_asked(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        "import offload\napp = offload.App()\n"
        "app.queue_counts = lambda: 1 / 0\n",  # a bug the CLI did not foresee
    )
    result = run_in(tmp_path, "--app", "myproject.jobs", "queues")
    assert_one_line_error(
        result, 1, "unexpected ZeroDivisionError: division by zero", "run with -v"
    )
    full = run_in(tmp_path, "--traceback", "--app", "myproject.jobs", "queues")
    assert full.returncode == 1
    assert full.stderr.startswith("error: unexpected ZeroDivisionError: division by zero\n")
    assert "Traceback (most recent call last)" in full.stderr


def test_unknown_names_list_the_known_ones_or_the_nearest(tmp_path: Path) -> None:
    env = base_env(OFFLOAD_APP=APP, OFFLOAD_URL=f"sqlite:///{tmp_path / 'jobs.db'}")
    near = offload_cli("enqueue", "bad_reslt", env=env)
    assert_one_line_error(near, 1, "unknown task 'bad_reslt'; did you mean 'bad_result'?")
    far = offload_cli("enqueue", "zzzzzzzz", env=env)
    more = len(basic.app.registry.names()) - 10
    assert_one_line_error(far, 1, "unknown task 'zzzzzzzz'; known tasks: add, async_sleep, ")
    assert f"and {more} more" in far.stderr
    cron_env = {**env, "OFFLOAD_APP": "tests.apps.cron:app"}
    cron = offload_cli("cron", "run", "every_secnd_all", env=cron_env)
    assert_one_line_error(
        cron, 1, "no schedule named 'every_secnd_all'; did you mean 'every_second_all'?"
    )
    listed = offload_cli("cron", "run", "nightly", env=cron_env)
    assert_one_line_error(
        listed,
        1,
        "no schedule named 'nightly'; known schedules: every_second_all, every_second_last, "
        "every_second_skip",
    )
