"""What every dashboard handler shares, internal: the templates, who is looking (the
session), the guard each route runs behind (CSRF, scope, errors as pages) and the headers
of every answer."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs

import orjson
from jinja2 import Environment, PackageLoader
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from offload.app import App
from offload.core.errors import OffloadError
from offload.core.tokens import Scope
from offload.core.wire import ERRORS
from offload.dashboard import _security as security

log = logging.getLogger("offload.dashboard")
T = TypeVar("T")

#: The largest form a dashboard action reads (its fields are a few ids and filters).
FORM_LIMIT = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who looks at the dashboard: a token's name (None when tokens are not checked) and
    whether it may act (the admin scope, or no token checks at all)."""

    name: str | None
    can_act: bool
    auth: bool


class PageError(Exception):
    """A request the dashboard answers with an error page: `status` and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[[Request, Viewer], Awaitable[Response]]


def _when(moment: datetime | None) -> str:
    """A time as the dashboard shows it: UTC to the second."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _epoch(value: Any) -> str:
    """An error's time (epoch seconds, as a worker stores it) as the dashboard shows it."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return _when(datetime.fromtimestamp(value, UTC))
        except (OverflowError, ValueError, OSError):
            return str(value)
    return str(value or "")


def _seconds(value: float | None) -> str:
    """A duration, short: 850ms, 12.5s, 4m 10s, 3h 05m."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.1f}s"
    if value < 3600:
        return f"{int(value // 60)}m {int(value % 60):02d}s"
    return f"{int(value // 3600)}h {int(value % 3600 // 60):02d}m"


def _json(value: Any) -> str:
    """A JSON value, indented, as text (escaped by the template like any other text)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)


def _short_json(value: Any, limit: int = 80) -> str:
    text = _json(value).replace("\n", " ")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def environment() -> Environment:
    """The templates, every value autoescaped (no template marks data safe)."""
    env = Environment(
        loader=PackageLoader("offload.dashboard", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=_when, epoch=_epoch, seconds=_seconds, json=_json, short_json=_short_json
    )
    return env


class Site:
    """The dashboard of one App: renders pages and guards every route."""

    def __init__(self, app: App, auth: bool) -> None:
        self.app = app
        self.auth = auth
        self.env = environment()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """An App call, in a worker thread (it blocks on the database)."""
        return await run_in_threadpool(fn, *args, **kwargs)

    def render(
        self, request: Request, name: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """The template `name` with what every page needs (prefix, CSRF token, viewer)."""
        template = self.env.get_template(name)
        html = template.render(
            prefix=request.scope.get("root_path", ""),
            csrf=request.state.csrf,
            viewer=getattr(request.state, "viewer", None),
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def error_page(self, request: Request, status: int, message: str) -> HTMLResponse:
        if request.headers.get("hx-request"):
            return self.render(request, "_message.html", status, message=message, kind="error")
        return self.render(request, "error.html", status, code=status, message=message)

    async def viewer(self, request: Request) -> Viewer | str | None:
        """Who sends `request`: a Viewer, else why not (a message for the login page, or
        None for no session at all)."""
        if not self.auth:
            return Viewer(None, True, False)
        session = security.read_session(request)
        if session.token is None:
            return session.problem
        info = await self.call(self.app.authenticate, session.token)
        if info is None:
            return "Your token is no longer valid (revoked or deleted): sign in with another."
        if not info.allows(Scope.READ):
            return f"Token {info.name!r} lacks the read scope the dashboard needs."
        return Viewer(info.name, info.allows(Scope.ADMIN), True)

    def guard(self, handler: Handler, *, action: bool = False, open_: bool = False) -> Any:
        """`handler` behind the dashboard's checks: for an `action` (a POST) the origin and
        the CSRF token, then a session with the read scope (admin for an action) unless
        `open_`; every failure an HTML page, never a 500 for bad input; the security
        headers on every answer."""

        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            token, new = security.csrf_token(request)
            request.state.csrf = token
            try:
                response = await self._checked(request, handler, action, open_)
            except PageError as exc:
                response = self.error_page(request, exc.status, exc.message)
            except OffloadError as exc:
                response = self.error_page(request, _status(exc), str(exc))
            except Exception:
                log.exception("dashboard: %s %s failed", request.method, request.url.path)
                response = self.error_page(request, 500, "Something went wrong (logged).")
            response.headers.update(security.HEADERS)
            if new:
                security.set_csrf(response, request, token)
            return response

        return guarded

    async def _checked(
        self, request: Request, handler: Handler, action: bool, open_: bool
    ) -> Response:
        if action:
            await self._check_csrf(request)
        found = await self.viewer(request)
        if isinstance(found, Viewer):
            request.state.viewer = found
        elif not open_:
            if request.headers.get("hx-request") or request.url.path.endswith("/live"):
                raise PageError(401, found or "Sign in first.")
            return self.login_page(request, found)
        else:
            request.state.viewer = None
        if action and not open_ and isinstance(found, Viewer) and not found.can_act:
            raise PageError(403, "Your token has no admin scope: it may look, not act.")
        return await handler(request, found if isinstance(found, Viewer) else _NOBODY)

    async def _check_csrf(self, request: Request) -> None:
        """Refuse (403) a state-changing request from another origin or without the
        CSRF token; nothing is read or changed before this passes."""
        why = security.foreign_origin(request)
        if why is not None:
            raise PageError(403, f"Refused: {why}.")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > FORM_LIMIT):
            raise PageError(413, "The form is too large.")
        echoed = request.headers.get(security.CSRF_HEADER)
        if echoed is None:
            echoed = (await read_form(request)).get(security.CSRF_FIELD)
        if not security.csrf_matches(request, echoed):
            raise PageError(
                403, "Refused: the form's CSRF token is missing or stale; reload the page."
            )

    def login_page(self, request: Request, problem: str | None) -> Response:
        wanted = request.url.path
        query = request.url.query
        return self.render(
            request,
            "login.html",
            401,
            message=problem,
            next=safe_next(request, wanted + (f"?{query}" if query else "")),
        )


_NOBODY = Viewer(None, False, True)


def _status(exc: OffloadError) -> int:
    """The status of an App error, as the API answers it; a lookup the API never makes
    (a consumer group, a token) is a 404."""
    status = next(ERRORS[c] for c in type(exc).__mro__ if c in ERRORS)[0]
    if status == 500 and isinstance(exc, LookupError):
        return 404
    return status


class Form:
    """A URL-encoded form's fields (the only kind the dashboard's pages send)."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def getlist(self, name: str) -> list[str]:
        return list(self.fields.get(name, []))

    def items(self) -> list[tuple[str, str]]:
        return [(name, values[0]) for name, values in self.fields.items() if values]


async def read_form(request: Request) -> Form:
    """The request's form, read once (at most `FORM_LIMIT` bytes; any other body is an
    empty form, so its CSRF check fails)."""
    cached = getattr(request.state, "form", None)
    if isinstance(cached, Form):
        return cached
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise PageError(413, "The form is too large.")
    fields: dict[str, list[str]] = {}
    if kind == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=2000)
        except (UnicodeDecodeError, ValueError):
            raise PageError(400, "The form could not be read.") from None
    form = Form(fields)
    request.state.form = form
    return form


def safe_next(request: Request, target: str | None) -> str:
    """Where to go after a form: `target` if it is a path of this dashboard (never another
    site), else the overview."""
    prefix: str = request.scope.get("root_path", "")
    if (
        not target
        or not target.startswith(prefix + "/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(ch) < 32 for ch in target)
    ):
        return prefix + "/"
    return target
