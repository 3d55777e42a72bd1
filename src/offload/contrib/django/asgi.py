"""offload's dashboard in front of an ASGI Django project, for its signed-in staff only:

    # asgi.py
    from django.core.asgi import get_asgi_application
    from offload.contrib.django.asgi import with_dashboard

    application = with_dashboard(get_asgi_application(), "/offload")

Requests under the prefix never reach Django's views: the user is read from Django's
session as its middleware would (anonymous: to the login page; not active staff: 403), and the
dashboard (`offload.server.dashboard`) answers on the event loop, its live parts streamed.
Other requests go to Django untouched. Under WSGI, mount `offload.contrib.django.urls`.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import import_module
from typing import Any

from offload.contrib.django.conf import get_app, may_see_dashboard
from offload.core.errors import ConfigurationError, shorten

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def with_dashboard(application: ASGIApp, prefix: str = "/offload") -> ASGIApp:
    """`application` (Django's ASGI application) with offload's dashboard at `prefix`
    (a path such as "/offload"), served to Django's signed-in staff only."""
    if not isinstance(prefix, str) or not prefix.startswith("/") or prefix.endswith("/"):
        raise ConfigurationError(f"prefix must be a path like '/offload', got {shorten(prefix)}")
    if not callable(application):
        raise ConfigurationError(f"with_dashboard takes an ASGI app, got {shorten(application)}")
    built: list[ASGIApp] = []

    async def dashboard() -> ASGIApp:
        """The dashboard of the project's App, built at first use (off the event loop:
        the App may create its tables)."""
        if not built:
            from offload.server import dashboard as make

            app = await asyncio.to_thread(get_app)
            built.append(make(app))
        return built[0]

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        root = scope.get("root_path", "")
        path = scope.get("path", "")
        mount = root + prefix
        if scope["type"] != "http" or not (path == mount or path.startswith(mount + "/")):
            await application(scope, receive, send)
            return
        refusal = await _refusal(scope)
        if refusal is not None:
            await _send_django(refusal, send)
            return
        if path == mount:  # the overview is at the prefix's slash, as under WSGI
            from django.http import HttpResponseRedirect

            await _send_django(HttpResponseRedirect(mount + "/"), send)
            return
        inner = await dashboard()
        await inner({**scope, "root_path": mount}, receive, send)

    return dispatch


async def _refusal(scope: Scope) -> Any:
    """Django's answer for a request that may not see the dashboard (the login page for
    an anonymous user, 403 for one who is not active staff), or None for active staff."""
    from django.conf import settings
    from django.contrib.auth import aget_user
    from django.contrib.auth.views import redirect_to_login
    from django.core.handlers.asgi import ASGIRequest
    from django.http import HttpResponseForbidden

    request = ASGIRequest(scope, io.BytesIO())
    engine = import_module(settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    user = await aget_user(request)
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not may_see_dashboard(user):
        return HttpResponseForbidden(b"offload's dashboard is for active staff users")
    return None


async def _send_django(response: Any, send: Send) -> None:
    """Send a plain Django response (no streaming, no cookies: a redirect or a 403)."""
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()
    ]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


__all__ = ["with_dashboard"]
