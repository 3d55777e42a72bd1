"""What loading an app costs a process that never connects (a worker's fork server and job
processes load the app to find its tasks)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import offload
from offload.core.errors import ConfigurationError


def test_an_app_on_postgresql_loads_psycopg_only_when_it_connects() -> None:
    code = (
        "import sys, offload\n"
        "app = offload.App('postgresql://nobody@127.0.0.1:1/none')\n"
        "assert 'psycopg' not in sys.modules, 'psycopg imported by App()'\n"
        "try:\n"
        "    app.backend.now()\n"
        "except offload.core.errors.BackendError as exc:\n"
        "    print(type(exc).__name__)\n"
        "print('psycopg' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["BackendUnavailable", "True"]


def test_without_the_postgres_extra_an_app_says_which_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from offload.backends.postgres import backend

    monkeypatch.setattr(backend, "find_spec", lambda name: None)  # as if not installed
    with pytest.raises(ConfigurationError, match=r"pip install 'offload\[postgres\]'"):
        offload.App("postgresql://nobody@127.0.0.1:1/none")
