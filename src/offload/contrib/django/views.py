"""offload's dashboard served by a WSGI Django project, to its signed-in active staff only.

The view checks Django's user (anonymous: to the login page; signed in but not active
staff, as Django's admin requires: 403), then hands the request to the dashboard alone
(`offload.server.dashboard`: no API routes, no sign-in of its own), under the prefix it is
mounted at. The dashboard runs on an event loop of its own thread; its answer comes back
whole, or streamed for a live part (whose end, when the client goes, stops the dashboard's
stream). Under ASGI, put `offload.contrib.django.asgi.with_dashboard` in front of Django
instead, so that live parts stream on the server's event loop.

The dashboard's forms carry its own CSRF token (double submit, origin checked), so the view
is exempt from Django's, whose token the dashboard's pages do not carry.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from offload.app import App
from offload.contrib.django.conf import get_app, may_see_dashboard

Message = dict[str, Any]


class _Bridge:
    """The dashboard (an ASGI app) called from Django's synchronous views: it runs on an
    event loop in a daemon thread, one task per request."""

    def __init__(self, asgi: Any) -> None:
        self.asgi = asgi
        self.loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=self.loop.run_forever, name="offload-dashboard", daemon=True
        )
        thread.start()

    def call(self, scope: Message, body: bytes) -> tuple[Message, Generator[bytes, None, None]]:
        """Run one request: its `http.response.start` message, and its body's parts."""
        messages: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        gone = asyncio.Event()
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            messages.put(message)

        async def run() -> None:
            try:
                await self.asgi(scope, receive, send)
            finally:
                messages.put(None)

        running = asyncio.run_coroutine_threadsafe(run(), self.loop)
        start = messages.get()
        if start is None:  # the app ended without an answer: its error, or a plain one
            running.result()
            raise RuntimeError("offload's dashboard sent no answer")
        return start, self._body(messages, gone, running)

    def _body(
        self,
        messages: queue.SimpleQueue[Message | None],
        gone: asyncio.Event,
        running: Future[None],
    ) -> Generator[bytes, None, None]:
        """The body's parts as they come; closing it early (the client went) tells the
        dashboard, and stops its task."""
        try:
            while (message := messages.get()) is not None:
                if message["type"] != "http.response.body":
                    continue
                if message.get("body"):
                    yield bytes(message["body"])
                if not message.get("more_body", False):
                    return
        finally:
            self.loop.call_soon_threadsafe(gone.set)
            running.cancel()


_lock = threading.Lock()
#: The dashboard's bridge, and the App it was built on.
_built: tuple[App, _Bridge] | None = None


def _bridge() -> _Bridge:
    """The dashboard of the project's App, built at first use."""
    global _built
    app = get_app()
    with _lock:
        if _built is None or _built[0] is not app:
            from offload.server import dashboard  # ExtraMissing without the server extra

            _built = (app, _Bridge(dashboard(app)))
        return _built[1]


def _scope(request: HttpRequest, path: str) -> Message:
    """The ASGI scope of `request` for the dashboard mounted where `path` (what follows
    the prefix) begins."""
    root = request.path[: len(request.path) - len(path)].rstrip("/")
    headers = [
        (key[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1"))
        for key, value in request.META.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    ]
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        value = request.META.get(key)
        if value:
            headers.append((key.replace("_", "-").lower().encode(), str(value).encode("latin-1")))
    port = int(request.META.get("SERVER_PORT") or 80)
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method or "GET",
        "scheme": request.scheme or "http",
        "path": request.path,
        "root_path": root,
        "query_string": request.META.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
        "server": (request.META.get("SERVER_NAME", "localhost"), port),
        "client": (request.META.get("REMOTE_ADDR", ""), 0),
    }


def _response(start: Message, body: Generator[bytes, None, None]) -> HttpResponseBase:
    """A Django response of what the dashboard answered: an event stream streamed, any
    other answer read whole; cookies through Django's cookie jar (there may be several)."""
    headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in start.get("headers", [])]
    kind = {name.lower(): value for name, value in headers}.get("content-type", "")
    response: HttpResponseBase
    if kind.startswith("text/event-stream"):
        response = StreamingHttpResponse(body, status=start["status"])
    else:
        try:
            response = HttpResponse(b"".join(body), status=start["status"])
        finally:
            body.close()
    for name, value in headers:
        if name.lower() == "set-cookie":
            response.cookies.load(value)
        elif name.lower() != "content-length":
            response[name] = value
    return response


def _serve(request: HttpRequest, path: str = "") -> HttpResponseBase:
    """The dashboard page or action at `path`, for signed-in active staff (anonymous: the
    login page, with this page to come back to; not staff, or deactivated: 403)."""
    user = getattr(request, "user", None)
    if user is None:
        raise ImproperlyConfigured(
            "offload's dashboard needs to know who is signed in: add "
            "django.contrib.auth.middleware.AuthenticationMiddleware to MIDDLEWARE"
        )
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not may_see_dashboard(user):
        raise PermissionDenied("offload's dashboard is for active staff users")
    start, body = _bridge().call(_scope(request, path), request.body)
    return _response(start, body)


#: The view, exempt from Django's CSRF check: the dashboard's own guards its actions.
dashboard: Callable[..., HttpResponseBase] = csrf_exempt(_serve)
