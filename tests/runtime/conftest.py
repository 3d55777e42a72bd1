"""Fixtures that start real worker processes of tests.apps.basic."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import offload

ROOT = Path(__file__).resolve().parents[2]
#: The path of processes the tests start: the `offload` these tests import, then the tests.
#: Without the first, a worker would import whichever offload is installed, which may be
#: another checkout's (an editable install), and the tree under test would go untested.
PYTHONPATH = os.pathsep.join((str(Path(offload.__file__).resolve().parents[1]), str(ROOT)))
StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def basic_app(migrated_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[offload.App]:
    """tests.apps.basic's tasks registered on a fresh, migrated database of each backend."""
    from tests.apps import basic

    monkeypatch.setenv("OFFLOAD_URL", migrated_db_url)
    application = offload.App(migrated_db_url)
    application.migrate()
    for name in basic.app.registry.names():  # a copy: tests may register more tasks
        application.registry.add(basic.app.registry.get(name))
    yield application
    application.close()


@pytest.fixture
def start_worker(
    db_url: str, tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> Iterator[StartWorker]:
    """Start `python -m tests.apps.run_worker` processes; all are killed at teardown."""

    def start(**settings: object) -> subprocess.Popen[bytes]:
        env = dict(os.environ, OFFLOAD_URL=db_url, PYTHONPATH=PYTHONPATH)
        env["OFFLOAD_TEST_LEDGER"] = str(tmp_path / "ledger.txt")
        for key, value in settings.items():
            env[f"WORKER_{key.upper()}"] = str(value)
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.apps.run_worker"], cwd=ROOT, env=env
        )
        spawned.append(process)
        return process

    yield start
