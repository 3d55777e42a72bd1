"""Fixtures of the client tests: the HTTP API of an App served by uvicorn on a free
loopback port (in a thread of the test process), and the App it serves."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn
from starlette.types import ASGIApp

import offload

Serve = Callable[..., str]


@contextlib.contextmanager
def served(asgi: ASGIApp) -> Iterator[str]:
    """`asgi` served by uvicorn on 127.0.0.1 at a free port until the block ends; its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(asgi, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


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
