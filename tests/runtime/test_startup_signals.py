"""Signals while a process starts or migrates leave the database consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import offload
from offload.core.errors import BackendError, ConfigurationError, SchemaMismatch
from tests.runtime.conftest import PYTHONPATH

MIGRATE = "import offload, sys; offload.App(sys.argv[1], auto_migrate=False).migrate()"


def test_killed_migrations_leave_the_schema_old_or_new_never_half(db_url: str) -> None:
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    app = offload.App(db_url, auto_migrate=False)
    target = app.backend.schema.target
    for delay in (0.05, 0.15, 0.3, 0.45, 0.6, 0.8):
        process = subprocess.Popen([sys.executable, "-c", MIGRATE, db_url], env=env)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        version = app.backend.schema.version()
        if version != target:
            with pytest.raises(SchemaMismatch):
                app.backend.schema.check()
        # Each migration commits whole with its version: a kill between two leaves the
        # earlier one, never part of the next (schema 5 is the first to add a table).
        assert version in range(target + 1)
        assert _has_queue_policies(app) == (version >= 5), version
    assert app.migrate() == target
    app.backend.schema.check()
    assert app.queue_counts() == {}
    app.close()


def _has_queue_policies(app: offload.App) -> bool:
    """Whether the table schema 5 creates exists."""
    try:
        app.backend.queues.list()
    except BackendError:
        return False
    return True


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": -1}, "timeout must be a finite number > 0"),
        ({"cpu_seconds": "ten"}, "cpu_seconds must be a number"),
        ({"memory_mb": float("nan")}, "memory_mb must be a finite number"),
        ({"executor": "gpu"}, "unknown executor 'gpu'"),
    ],
)
def test_bad_limits_are_refused_where_the_task_is_declared(
    options: dict[str, object], message: str
) -> None:
    app = offload.App("sqlite:///unused.db")
    with pytest.raises(ConfigurationError, match=message):
        app.task(name="limited", **options)(lambda: None)  # type: ignore[call-overload]
    assert "limited" not in app.registry
