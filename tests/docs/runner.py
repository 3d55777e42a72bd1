"""Running one docs example: its files written, its scripts and commands run, its
background processes (workers) started and stopped, in a fresh directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import offload
from tests.docs.markdown import PYTHON, SHELL, Block, Example, output_matches

#: The `src` directory of the offload under test: the examples import it.
SRC = Path(offload.__file__).resolve().parent.parent
#: Seconds one block may take, and a background process may take to stop.
BLOCK_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def shims(bin_dir: Path) -> None:
    """`python`, `python3` and `offload` commands that run this interpreter on this tree."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, target in (
        ("python", f'exec "{sys.executable}" "$@"'),
        ("python3", f'exec "{sys.executable}" "$@"'),
        ("offload", f'exec "{sys.executable}" -m offload.cli "$@"'),
    ):
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{target}\n")
        path.chmod(0o755)


def environment(bin_dir: Path, url: str | None, second: str | None = None) -> dict[str, str]:
    """The test's environment without OFFLOAD_* settings, with the shims first on PATH and
    this tree importable; `$OFFLOAD_URL` set for a PostgreSQL example, and `$REPORTS_URL`
    for one over two clusters."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    if url is not None:
        env["OFFLOAD_URL"] = url
    if second is not None:
        env["REPORTS_URL"] = second
    return env


class Run:
    """One example being run: its directory, its environment, its background processes."""

    def __init__(
        self, example: Example, workdir: Path, url: str | None, second: str | None = None
    ) -> None:
        self.example = example
        self.workdir = workdir
        shims(workdir / ".bin")
        self.env = environment(workdir / ".bin", url, second)
        self.background: list[tuple[Block, str, subprocess.Popen[bytes], Path]] = []

    def run(self) -> None:
        try:
            for block in self.example.blocks:
                self.block(block)
        except BaseException:
            self.stop(check=False)
            raise
        self.stop(check=True)

    def block(self, block: Block) -> None:
        if block.not_run or block.lang not in PYTHON | SHELL:
            return
        if block.writes:
            target = self.workdir / block.writes
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)
            return
        if block.background:
            self.start(block)
            return
        if block.lang in PYTHON:
            script = self.workdir / f".block_{block.line}.py"
            script.write_text(block.code)
            argv = [sys.executable, str(script)]
        else:
            argv = ["bash", "-e", "-o", "pipefail", "-c", block.code]
        try:
            done = subprocess.run(
                argv,
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{block.where}: still running after {BLOCK_TIMEOUT:g}s{self.logs()}")
            raise AssertionError from exc  # unreachable: for the type checker
        if done.returncode != 0:
            pytest.fail(
                f"{block.where}: exit code {done.returncode}\n--- code\n{block.code}"
                f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}{self.logs()}"
            )
        if block.expected is not None and not output_matches(block.expected, done.stdout):
            pytest.fail(
                f"{block.where}: printed something else than its output block\n"
                f"--- expected\n{block.expected}--- printed\n{done.stdout}"
                f"--- stderr\n{done.stderr}{self.logs()}"
            )

    def start(self, block: Block) -> None:
        """Start each command of a background block, its output in a log file."""
        assert block.lang in SHELL, f"{block.where}: only sh blocks run in the background"
        for number, command in enumerate(_commands(block.code)):
            log = self.workdir / f".background_{block.line}_{number}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    ["bash", "-c", f"exec {command}"],
                    cwd=self.workdir,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            self.background.append((block, command, process, log))

    def stop(self, *, check: bool) -> None:
        """SIGTERM each background process; with `check`, each must have been running and
        must exit 0 (a graceful stop)."""
        failures = []
        for block, command, process, log in self.background:
            early = process.poll()
            if early is None:
                process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
                failures.append(f"{block.where}: `{command}` did not stop on SIGTERM")
                continue
            if early is not None:
                failures.append(f"{block.where}: `{command}` exited early, code {early}")
            elif code != 0:
                failures.append(f"{block.where}: `{command}` exited {code} on SIGTERM")
        if check and failures:
            pytest.fail("\n".join(failures) + self.logs())
        self.background.clear()

    def logs(self) -> str:
        """The output of the background processes so far, for a failure message."""
        parts = [
            f"\n--- output of `{command}` ({block.where})\n{log.read_text(errors='replace')}"
            for block, command, _process, log in self.background
        ]
        return "".join(parts)


def _commands(code: str) -> list[str]:
    """The commands of a shell block: one a line, `\\` continuing, comments dropped."""
    commands, current = [], ""
    for line in code.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip() and not current.strip().startswith("#"):
            commands.append(current.strip())
        current = ""
    return commands
