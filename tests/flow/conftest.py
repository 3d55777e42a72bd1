"""Fixtures of the flow-control process tests: tests.apps.flow on a fresh database of each
backend, and its workers and schedulers as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import offload
from tests.runtime.conftest import PYTHONPATH, ROOT

StartFlow = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def flow_app(migrated_db_url: str) -> Iterator[offload.App]:
    """tests.apps.flow's tasks registered on a fresh, migrated database."""
    from tests.apps import flow

    application = offload.App(migrated_db_url)
    application.migrate()
    for name in flow.app.registry.names():
        application.registry.add(flow.app.registry.get(name))
    yield application
    application.close()


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    """Where `fanout`'s sweep hook writes one JSON line per call."""
    return tmp_path / "swept.jsonl"


@pytest.fixture
def start_flow(
    db_url: str, sweep_file: Path, spawned: list[subprocess.Popen[bytes]]
) -> Iterator[StartFlow]:
    """Start `python -m tests.apps.run_flow` processes (role worker or scheduler)."""

    def start(role: str = "worker", **settings: object) -> subprocess.Popen[bytes]:
        env = dict(os.environ, OFFLOAD_URL=db_url, PYTHONPATH=PYTHONPATH, FLOW_ROLE=role)
        env["FLOW_SWEEP_FILE"] = str(sweep_file)
        for key, value in settings.items():
            env[f"WORKER_{key.upper()}"] = str(value)
        process = subprocess.Popen([sys.executable, "-m", "tests.apps.run_flow"], cwd=ROOT, env=env)
        spawned.append(process)
        return process

    yield start
