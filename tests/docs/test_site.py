"""The documentation site builds with warnings as errors (`mkdocs build --strict`), and its
generated reference pages are not empty."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import offload
from offload.core.states import JobState
from tests.docs.markdown import blocks
from tests.docs.runner import SRC

ROOT = Path(__file__).resolve().parents[2]


def test_site_builds_strict(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env["NO_MKDOCS_2_WARNING"] = "1"  # Material's notice about its successor, not ours
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert "WARNING" not in built.stderr, built.stderr
    api = (site / "reference" / "api" / "index.html").read_text()
    for name in offload.__all__:
        if name[0].isupper() or name in ("call", "current_job"):
            assert f'id="offload.{name}"' in api or f'id="offload.core.errors.{name}"' in api, name
    cli = (site / "reference" / "cli" / "index.html").read_text()
    commands = ("worker", "enqueue", "status", "jobs", "retry", "cancel", "purge", "queues")
    for command in (*commands, "workers", "scheduler", "migrate", "cron run"):
        assert f"offload {command}" in cli, command
    for option in ("--log-format", "--before", "--after", "--all", "--yes"):
        assert option in cli, option


def test_the_state_diagram_has_every_state() -> None:
    """The concepts page's diagram names each state of `JobState`, and no other."""
    (diagram,) = [b for _, _, b in blocks(ROOT / "docs" / "concepts.md") if b.lang == "mermaid"]
    arrows = re.findall(r"^\s*(\[\*\]|\w+)\s*-->\s*(\[\*\]|\w+)", diagram.code, re.MULTILINE)
    assert len(arrows) > 10
    named = {name for arrow in arrows for name in arrow} - {"[*]"}
    assert named == {state.value for state in JobState}
