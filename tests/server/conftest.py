"""Fixtures of the HTTP API tests: an App with tasks on each backend, a client that checks
every answer against the OpenAPI document, and `offload serve` run for real."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

import offload
from offload.server.body import DOCUMENT_URI, validator
from tests.conformance.helpers import RawDB
from tests.runtime.conftest import basic_app, start_worker  # noqa: F401  (fixtures used here)

ROOT = Path(__file__).resolve().parents[2]


def _pointer(*parts: str) -> str:
    """A JSON pointer of the document from its keys (escaping `~` and `/`)."""
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class Api:
    """Calls the API by route template; each answer must have a status the document the
    server serves lists for that route, a body fitting the schema it names, and the
    headers it promises."""

    def __init__(self, asgi: ASGIApp, base_url: str = "http://api.test") -> None:
        self.asgi = asgi
        self.base_url = base_url

    @functools.cached_property
    def doc(self) -> dict[str, Any]:
        """The document as this server serves it (with security, or not)."""
        served: dict[str, Any] = self.request("GET", "/openapi.json").json()
        return served

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request through httpx's ASGI transport, unchecked."""

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.asgi)
            async with httpx.AsyncClient(transport=transport, base_url=self.base_url) as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def call(
        self,
        method: str,
        template: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: Any = None,
        headers: dict[str, str] | None = None,
        **path: Any,
    ) -> httpx.Response:
        url = template.format(**path)
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if json is not None:
            kwargs["json"] = json
        if content is not None:
            kwargs["content"] = content
        response = self.request(method, url, **kwargs)
        operation = self.doc["paths"][template][method.lower()]
        status = str(response.status_code)
        assert status in operation["responses"], (
            f"{method} {template} answered {status}, which the document does not list: "
            f"{response.text[:300]}"
        )
        where = ["paths", template, method.lower(), "responses", status]
        spec = operation["responses"][status]
        if "$ref" in spec:
            where = spec["$ref"].removeprefix("#/").split("/")
            spec = self.doc["components"]["responses"][where[-1]]
        if "content" not in spec:  # an answer with no body (204)
            assert response.content == b"", f"{method} {template}: a body where none is due"
        elif "application/json" in spec["content"]:
            pointer = _pointer(*where, "content", "application/json", "schema")
            validator({"$ref": f"{DOCUMENT_URI}#{pointer}"}).validate(response.json())
        else:  # a text answer (/metrics): of the one media type the document names
            [media] = spec["content"]
            assert response.headers["content-type"].startswith(media), response.headers
        for name in spec.get("headers", {}):
            if name == "Location":
                assert name in response.headers, f"{method} {template}: no {name} header"
        return response


def with_tasks(app: offload.App) -> offload.App:
    """`app` with an `add` task, which checks its arguments, and an `echo`, taking any."""

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="echo")
    def echo(*args: Any, **kwargs: Any) -> Any:
        return [args, kwargs]

    return app


@pytest.fixture
def tasks_app(app: offload.App) -> offload.App:
    """`app` with an `add` and an `echo` task."""
    return with_tasks(app)


@pytest.fixture
def api(tasks_app: offload.App) -> Api:
    """A client of `offload.asgi(tasks_app)` that checks answers against the document."""
    return Api(offload.asgi(tasks_app))


@pytest.fixture
def unchanged(tasks_app: offload.App, db_url: str) -> Iterator[None]:
    """One job stored before the test; afterwards every row must be exactly as it was."""
    tasks_app.enqueue("echo", ["already here"])
    raw = RawDB(db_url)
    before = raw.all_rows()
    yield
    assert raw.all_rows() == before, "a refused request changed stored jobs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(db_url: str, *args: str) -> subprocess.Popen[bytes]:
    """`offload serve tests.apps.basic:app *args` on `db_url`, its output piped."""
    env = {**os.environ, "OFFLOAD_URL": db_url, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-m", "offload.cli", "serve", "tests.apps.basic:app", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_up(server: subprocess.Popen[bytes], base: str) -> None:
    """Until `server` answers /health (failing with its output if it exits)."""
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, server.communicate()[0].decode()
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "offload serve did not answer /health"
        time.sleep(0.1)


def stop(server: subprocess.Popen[bytes]) -> str:
    """SIGTERM `server`, which must then exit 0; its output."""
    server.send_signal(signal.SIGTERM)
    output = server.communicate(timeout=60)[0].decode()
    assert server.returncode == 0, output
    return output


class ApiServer:
    """A running `offload serve` of tests.apps.basic: its process and base URL."""

    def __init__(self, process: subprocess.Popen[bytes], base: str) -> None:
        self.process = process
        self.base = base


@pytest.fixture
def start_api(db_url: str, spawned: list[subprocess.Popen[bytes]]) -> Callable[..., ApiServer]:
    """Start `offload serve` on a free loopback port (extra flags as arguments) and wait
    until it answers; each is killed at teardown."""

    def start(*args: str) -> ApiServer:
        port = free_port()
        process = serve(db_url, "--port", str(port), *args)
        spawned.append(process)
        server = ApiServer(process, f"http://127.0.0.1:{port}")
        wait_up(process, server.base)
        return server

    return start
