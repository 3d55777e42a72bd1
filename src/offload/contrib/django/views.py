"""offload's dashboard served by Django, to Django's signed-in staff only.

The view checks Django's user (anonymous: to the login page; signed in but not staff:
403), then hands the request to the dashboard alone (`offload.server.dashboard`: no API
routes, no sign-in of its own) through the a2wsgi adapter, under the prefix it is mounted
at. It runs the same under WSGI and ASGI Django. The dashboard's forms carry its own CSRF
token (double submit, origin checked), so the view is exempt from Django's, whose token the
dashboard's pages do not carry.
"""

from __future__ import annotations

import io
import itertools
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from offload.app import App
from offload.contrib.django.conf import get_app
from offload.core.errors import ExtraMissing

_lock = threading.Lock()
#: The dashboard as a WSGI app, and the App it was built on.
_built: tuple[App, Any] | None = None


def _wsgi() -> Any:
    """The dashboard of the project's App as a WSGI app, built at first use."""
    global _built
    app = get_app()
    with _lock:
        if _built is None or _built[0] is not app:
            try:
                from a2wsgi import ASGIMiddleware
            except ModuleNotFoundError as exc:
                raise ExtraMissing.of("the dashboard in Django", "django-dashboard", exc) from None
            from offload.server import dashboard

            _built = (app, ASGIMiddleware(dashboard(app)))  # type: ignore[arg-type]
        return _built[1]


def _environ(request: HttpRequest, path: str) -> dict[str, Any]:
    """The WSGI environ of `request` for the dashboard: its prefix as SCRIPT_NAME, `path`
    (what follows the prefix) as PATH_INFO, the body already read by Django."""
    prefix = request.path[: len(request.path) - len(path)].rstrip("/")
    environ: dict[str, Any] = {
        key: value
        for key, value in request.META.items()
        if isinstance(value, str) and (key.startswith("HTTP_") or key.isupper())
    }
    body = request.body
    environ.update(
        {
            "REQUEST_METHOD": request.method or "GET",
            "SCRIPT_NAME": prefix,
            "PATH_INFO": "/" + path,
            "QUERY_STRING": request.META.get("QUERY_STRING", ""),
            "SERVER_NAME": request.META.get("SERVER_NAME", "localhost"),
            "SERVER_PORT": str(request.META.get("SERVER_PORT", "80")),
            "SERVER_PROTOCOL": request.META.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": request.scheme or "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
    )
    return environ


def _response(
    status: str, headers: list[tuple[str, str]], body: Generator[bytes, None, None]
) -> Any:
    """A Django response of what the dashboard answered: an event stream streamed, any
    other answer read whole; cookies through Django's cookie jar (there may be several)."""
    kind = {name.lower(): value for name, value in headers}.get("content-type", "")
    response: HttpResponseBase
    if kind.startswith("text/event-stream"):
        response = StreamingHttpResponse(body, status=int(status[:3]))
    else:
        with closing(body):
            response = HttpResponse(b"".join(body), status=int(status[:3]))
    for name, value in headers:
        if name.lower() == "set-cookie":
            response.cookies.load(value)
        elif name.lower() != "content-length":
            response[name] = value
    return response


def _serve(request: HttpRequest, path: str = "") -> HttpResponseBase:
    """The dashboard page or action at `path`, for signed-in staff (anonymous: the login
    page, with this page to come back to; not staff: 403)."""
    user = getattr(request, "user", None)
    if user is None:
        raise ImproperlyConfigured(
            "offload's dashboard needs to know who is signed in: add "
            "django.contrib.auth.middleware.AuthenticationMiddleware to MIDDLEWARE"
        )
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not user.is_staff:
        raise PermissionDenied("offload's dashboard is for staff users")
    answered: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answered["status"], answered["headers"] = status, headers
        return lambda data: None

    body: Generator[bytes, None, None] = _wsgi()(_environ(request, path), start_response)
    first = next(body, b"")  # the status comes with the answer's first part
    rest = itertools.chain([first], body)
    response: HttpResponseBase = _response(
        answered["status"], answered["headers"], _closing(rest, body)
    )
    return response


def _closing(
    parts: Iterator[bytes], body: Generator[bytes, None, None]
) -> Generator[bytes, None, None]:
    """`parts`, with the dashboard's `body` closed when they end or the client goes."""
    try:
        yield from parts
    finally:
        body.close()


#: The view, exempt from Django's CSRF check: the dashboard's own guards its actions.
dashboard: Callable[..., HttpResponseBase] = csrf_exempt(_serve)
