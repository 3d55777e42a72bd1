"""Fixtures of the conformance tests: an `echo` task and a guard that nothing stored
changes (the bad-input tests), and a registered worker's wake-up channel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import offload
from offload.backends.base import Listener
from offload.core.records import WorkerInfo
from tests.conformance.helpers import RawDB


@pytest.fixture
def echo(app: offload.App) -> offload.Task[..., Any]:
    @app.task(name="echo")
    def echo(*args: Any, **kwargs: Any) -> Any:
        return [args, kwargs]

    task: offload.Task[..., Any] = echo  # `-> Any` could be async: say which
    return task


@pytest.fixture
def stored(app: offload.App, echo: offload.Task[..., Any], db_url: str) -> Iterator[None]:
    """One job stored before the test; afterwards every row must be exactly as it was."""
    echo.enqueue("already here", n=1)
    raw = RawDB(db_url)
    before, events = raw.all_rows(), raw.events()
    yield
    assert raw.all_rows() == before, "a refused call changed stored jobs"
    assert raw.events() == events, "a refused call stored an event"


@pytest.fixture
def listener(app: offload.App) -> Iterator[Listener]:
    """A worker's wake-up channel, registered so that SQLite producers know its address."""
    channel = app.backend.listener()
    now = app.backend.now()
    app.backend.workers.register(
        WorkerInfo("w1", "host", 1, ["default"], 1, now, now, wake=channel.address)
    )
    yield channel
    channel.close()
