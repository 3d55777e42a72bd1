"""Refusing requests addressed to a name other than this machine's own, for an API that
checks no token and listens on loopback: a page on another site whose name is made to
resolve to 127.0.0.1 (DNS rebinding) is same-origin with it for the browser, but its
requests still say that other name in their Host header."""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from offload.server.serve import is_loopback


def host_name(header: str) -> str:
    """The host of a Host header, without its port (`[::1]:8000` gives `::1`)."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class LoopbackOnly:
    """Pass on HTTP requests whose Host is localhost or a loopback address; answer the
    others 421 (Misdirected Request) without calling the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if not is_loopback(host_name(header)):
                answer = PlainTextResponse(
                    "this server answers requests for localhost only (it checks no API "
                    f"token), not for {header[:100]!r}",
                    status_code=421,
                )
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
