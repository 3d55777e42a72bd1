"""Fixtures of the CLI tests: an environment naming the test app and a migrated database.

Each test drives `python -m offload.cli` with OFFLOAD_APP=tests.apps.basic:app and
OFFLOAD_URL set to a fresh database, then checks what the database holds through the App.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import offload
from tests.cli.helpers import APP, base_env, offload_cli


@pytest.fixture
def env(db_url: str) -> dict[str, str]:
    """Environment naming the test app and a fresh database of each backend."""
    return base_env(OFFLOAD_APP=APP, OFFLOAD_URL=db_url)


@pytest.fixture
def store(db_url: str, env: dict[str, str]) -> Iterator[offload.App]:
    """The database after `offload migrate`, opened here with the test app's tasks."""
    from tests.apps import basic

    migrated = offload_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    app = offload.App(db_url)
    for name in basic.app.registry.names():
        if name not in app.registry:  # every App registers the built-in workflow tasks
            app.registry.add(basic.app.registry.get(name))
    yield app
    app.close()
