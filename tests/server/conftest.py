"""Fixtures of the HTTP API tests: an App with tasks on each backend, and a client that
checks every answer against the OpenAPI document."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

import offload
from offload.server.body import DOCUMENT_URI, validator
from tests.conformance.helpers import RawDB


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
        if "application/json" in spec["content"]:
            pointer = _pointer(*where, "content", "application/json", "schema")
            validator({"$ref": f"{DOCUMENT_URI}#{pointer}"}).validate(response.json())
        else:  # a text answer (/metrics): of the one media type the document names
            [media] = spec["content"]
            assert response.headers["content-type"].startswith(media), response.headers
        for name in spec.get("headers", {}):
            if name == "Location":
                assert name in response.headers, f"{method} {template}: no {name} header"
        return response


@pytest.fixture
def tasks_app(app: offload.App) -> offload.App:
    """`app` with an `add` and an `echo` task."""

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="echo")
    def echo(*args: Any, **kwargs: Any) -> Any:
        return [args, kwargs]

    return app


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
