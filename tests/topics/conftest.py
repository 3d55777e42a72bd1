"""Topic process tests use the worker-process fixtures of tests.runtime, and an App with
tests.apps.topics's subscribers (their groups stored before anything is published)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import offload
from tests.runtime.conftest import start_worker  # noqa: F401  (a fixture used here)


@pytest.fixture
def topics_app(migrated_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[offload.App]:
    """tests.apps.topics's subscribers on a fresh, migrated database of each backend."""
    from tests.apps import topics

    monkeypatch.setenv("OFFLOAD_URL", migrated_db_url)
    application = offload.App(migrated_db_url)
    for name in topics.app.registry.names():
        application.registry.add(topics.app.registry.get(name))
    application.migrate()  # stores the groups
    yield application
    application.close()
