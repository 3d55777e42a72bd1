"""Help that teaches: every option of every command explains itself, names its environment
variable and shows its default; summaries are whole; bad values from the environment are
blamed on the variable."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from offload.cli.group import cli
from tests.cli.helpers import APP, assert_one_line_error, base_env, offload_cli


def commands(
    command: click.Command = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command and group under `offload`, with the words that invoke it."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from commands(sub, (*path, name))


def help_of(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80, env={})
    assert result.exit_code == 0, result.output
    return result.output


ALL = list(commands())


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) or "offload" for p, _ in ALL])
def test_every_option_has_help_its_environment_variable_and_its_default(
    path: tuple[str, ...], command: click.Command
) -> None:
    text = " ".join(help_of(path).split())  # unwrapped
    prefix = "_".join(("OFFLOAD", *path)).upper()
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in ("help", "version"):
            continue
        assert param.help, f"{' '.join(path)} {param.opts} has no help"
        envvar = param.envvar or f"{prefix}_{(param.name or '').upper()}"
        if param.name in ("all_jobs", "yes", "insecure"):  # typed, never inherited
            assert not param.allow_from_autoenv
            assert f"env var: {envvar}" not in text
            continue
        assert f"env var: {envvar}" in text, (param.opts, text)
        shown_default = isinstance(param.default, int | float | str) and not param.is_flag
        if shown_default:
            assert f"default: {param.default}" in text, (param.opts, text)
    # Summaries of subcommands are whole sentences, not cut with "...".
    for line in text.split("  "):
        assert not line.rstrip().endswith("..."), line


def test_summaries_in_the_command_lists_are_not_cut() -> None:
    for path, command in ALL:
        if isinstance(command, click.Group):
            listed = help_of(path).split("Commands:", 1)[1]
            for line in listed.splitlines():
                assert not line.rstrip().endswith("..."), (path, line)
            for name in command.commands:
                assert re.search(rf"^\s+{name}\s+\S", listed, re.MULTILINE), name


def test_choices_are_listed_as_accepted(tmp_path: Path) -> None:
    text = " ".join(help_of(("worker",)).split())
    assert "[debug|info|warning|error]" in text
    assert "default: info" in text
    assert "[process|thread|async]" in text
    assert "[cancelled|dead|shed]" in help_of(("retry",))


def test_python_dash_m_offload_is_the_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "offload", "--version"],
        check=False,
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("offload, version ")


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    env = base_env(OFFLOAD_APP=APP, OFFLOAD_URL=f"sqlite:///{tmp_path / 'jobs.db'}")
    result = offload_cli("worker", "--burst", env={**env, "OFFLOAD_WORKER_CONCURRENCY": "abc"})
    assert_one_line_error(result, 2, "invalid value for OFFLOAD_WORKER_CONCURRENCY: 'abc'")
    assert "--concurrency" not in result.stderr
    # The same value on the command line is blamed on the option.
    typed = offload_cli("worker", "--burst", "-c", "abc", env=env)
    assert_one_line_error(typed, 2, "Invalid value for '-c' / '--concurrency': 'abc'")
    bad_time = offload_cli("purge", "--yes", env={**env, "OFFLOAD_PURGE_BEFORE": "soon"})
    assert_one_line_error(bad_time, 2, "invalid value for OFFLOAD_PURGE_BEFORE: 'soon'")


@pytest.mark.parametrize("args", [[], ["cron"]])
def test_a_group_without_a_subcommand_prints_its_help_whole(args: list[str]) -> None:
    """As click does: the help on stderr, exit code 2 (no command was run), not an error
    line."""
    result = offload_cli(*args, env=base_env())
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"Usage: offload {' '.join(args)}".rstrip() + " [OPTIONS]")
    assert "Commands:" in result.stderr
    assert "error:" not in result.stderr
    assert len(result.stderr.splitlines()) > 5
