"""Fixtures of the client tests: the HTTP API of an App served by uvicorn on a free
loopback port (in a thread of the test process), and the App it serves."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import offload
from tests.serving import served

Serve = Callable[..., str]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Serve `offload.asgi(app, **settings)` over real HTTP; returns its URL."""
    with contextlib.ExitStack() as stack:

        def start(app: offload.App, **settings: Any) -> str:
            return stack.enter_context(served(offload.asgi(app, **settings)))

        yield start


@pytest.fixture
def tasks_app(app: offload.App) -> offload.App:
    """`app` with the tasks the client tests call: `add`, `echo`, and `once` (unique,
    raising DuplicateJob on a held key)."""

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="echo")
    def echo(*args: Any, **kwargs: Any) -> Any:
        return [list(args), kwargs]

    @app.task(name="once", unique=True, on_duplicate="raise")
    def once(key: str) -> str:
        return key

    return app
