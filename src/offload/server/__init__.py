"""The HTTP API: an ASGI app (Starlette) on an `offload.App`, run by `offload serve` or
mounted in a host app. It calls the App, in a thread pool, and holds no rules of its own.

Needs the `offload[server]` extra; importing this package does not, `asgi` does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from offload.core.errors import ConfigurationError, ExtraMissing

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from offload.app import App

#: The request body size accepted when none is given: a batch of many jobs, each within
#: the App's payload limit, fits; a body that never ends does not.
DEFAULT_BODY_LIMIT = 16 * 1024 * 1024
#: Seconds a request body may take to arrive when none is given: 16 MiB at about 2 Mbit/s.
DEFAULT_BODY_TIMEOUT = 60.0
#: The events an event stream holds for its client when none is given: a client further
#: behind is sent a `reconnect` event and dropped, so it never grows the server's memory.
DEFAULT_EVENT_BUFFER = 1000


def asgi(
    app: App,
    *,
    body_limit: int = DEFAULT_BODY_LIMIT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    auth: bool | None = None,
    event_buffer: int = DEFAULT_EVENT_BUFFER,
    loopback_only: bool = False,
) -> Starlette:
    """The HTTP API of `app` as an ASGI application; bodies over `body_limit` bytes are
    refused (413) without being read further, bodies not all arrived within `body_timeout`
    seconds are cut off (408), so a body that never ends holds nothing, and an event stream
    whose client falls `event_buffer` events behind is told to reconnect and closed.

    `auth` says whether routes other than /health, /ready and /openapi.json need a bearer
    token with their scope: True, False, or None for "if any token exists now" (which
    reads the database, so raises as `App.tokens_configured` does when it cannot). It is
    decided here, once: revoking every token later refuses every request, never opens
    the API.

    `loopback_only` answers 421 to any request whose Host header is not localhost or a
    loopback address: for an API without tokens on loopback (`offload serve`, `offload
    dev`), so that a page on another site that rebinds its name to 127.0.0.1 cannot use
    it."""
    try:
        from offload.server.routes import build
    except ModuleNotFoundError as exc:
        raise ExtraMissing.of("the HTTP API", "server", exc) from None
    for name, value in (("body_limit", body_limit), ("event_buffer", event_buffer)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
    if (
        isinstance(body_timeout, bool)
        or not isinstance(body_timeout, int | float)
        or not (body_timeout > 0 and math.isfinite(body_timeout))
    ):
        raise ConfigurationError(
            f"body_timeout must be a finite number of seconds > 0, got {body_timeout!r}"
        )
    if auth is not None and not isinstance(auth, bool):
        raise ConfigurationError(f"auth must be True, False or None, got {auth!r}")
    checks = app.tokens_configured() if auth is None else auth
    built = build(app, body_limit, float(body_timeout), checks, event_buffer)
    if loopback_only:
        from offload.server.hosts import LoopbackOnly

        built.add_middleware(LoopbackOnly)
    return built


def dashboard(app: App, *, event_buffer: int = DEFAULT_EVENT_BUFFER) -> Starlette:
    """The dashboard of `app` alone, without the API's routes and without signing in: for
    a host that lets only its own signed-in staff reach it (`offload.contrib.django.urls`).
    Its actions keep their own CSRF and origin checks."""
    try:
        from offload.server.routes import build_dashboard
    except ModuleNotFoundError as exc:
        raise ExtraMissing.of("the dashboard", "server", exc) from None
    if isinstance(event_buffer, bool) or not isinstance(event_buffer, int) or event_buffer < 1:
        raise ConfigurationError(f"event_buffer must be a positive int, got {event_buffer!r}")
    return build_dashboard(app, event_buffer)


__all__ = [
    "DEFAULT_BODY_LIMIT",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_EVENT_BUFFER",
    "asgi",
    "dashboard",
]
