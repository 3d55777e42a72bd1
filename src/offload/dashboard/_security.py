"""The dashboard's security, internal: its session cookie, its CSRF check and the headers
every dashboard answer carries.

Session: the cookie holds the API token the user pasted, an expiry, and an HMAC of both
keyed by the SHA-256 of the token. Any API replica verifies it without shared state, and
every request still authenticates the token (`App.authenticate`), so a revoked token ends
the session at the next click. The cookie is HttpOnly and SameSite=Strict (and Secure over
https): scripts never read it and no other site's page sends it.

CSRF: double submit. A random token lives in a SameSite=Strict cookie and is echoed by
every state-changing request, in a hidden form field or the `X-CSRF-Token` header that
htmx adds from `hx-headers` on <body>; a request from another origin (by its `Origin` or
`Sec-Fetch-Site`) is refused before that. It holds with tokens checked or not.

CSP: no inline script or style anywhere, so a value that escaped escaping still runs
nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

#: The cookie names (one path per mount, so two dashboards on one host keep apart).
SESSION_COOKIE = "offload_session"
CSRF_COOKIE = "offload_csrf"
#: The form field and header a state-changing request echoes the CSRF token in.
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
#: How long a login lasts, in seconds (the token's own revocation ends it sooner).
SESSION_SECONDS = 8 * 3600

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
#: The headers of every dashboard answer, pages and static files alike.
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _signature(token: str, expires: int) -> str:
    key = hashlib.sha256(token.encode()).digest()
    return hmac.new(key, f"{token}.{expires}".encode(), hashlib.sha256).hexdigest()


def session_value(token: str, expires: int) -> str:
    """The session cookie's value for `token`, valid until `expires` (epoch seconds)."""
    return f"{token}.{expires}.{_signature(token, expires)}"


@dataclass(frozen=True, slots=True)
class Session:
    """What a session cookie says: its token, or why it is no longer good."""

    token: str | None
    #: Why there is no token: None (no cookie at all), or a message for the login page.
    problem: str | None = None


def read_session(request: Request, now: float | None = None) -> Session:
    """The token of the request's session cookie, once its signature and expiry hold."""
    value = request.cookies.get(SESSION_COOKIE)
    if not value:
        return Session(None)
    token, _, rest = value.partition(".")
    expires_text, _, signature = rest.partition(".")
    if not token or not expires_text.isdigit() or len(expires_text) > 12:
        return Session(None, "Your session cookie is damaged: sign in again.")
    expires = int(expires_text)
    if not hmac.compare_digest(signature.encode(), _signature(token, expires).encode()):
        return Session(None, "Your session cookie is damaged: sign in again.")
    if expires <= (time.time() if now is None else now):
        return Session(None, "Your session expired: sign in again.")
    return Session(token)


def cookie_path(request: Request) -> str:
    """The path the dashboard's cookies are scoped to: where it is mounted."""
    return request.scope.get("root_path", "") or "/"


def set_session(response: Response, request: Request, token: str) -> None:
    expires = int(time.time()) + SESSION_SECONDS
    response.set_cookie(
        SESSION_COOKIE,
        session_value(token, expires),
        max_age=SESSION_SECONDS,
        path=cookie_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=cookie_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def csrf_token(request: Request) -> tuple[str, bool]:
    """The request's CSRF token, and whether it is new (then the answer must set it)."""
    given = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(given) <= 100 and given.replace("-", "").replace("_", "").isalnum():
        return given, False
    return secrets.token_urlsafe(32), True


def set_csrf(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        path=cookie_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def foreign_origin(request: Request) -> str | None:
    """Why a state-changing request comes from another site, or None when it does not
    (a browser names the page's origin in `Origin` and `Sec-Fetch-Site`)."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return "the request comes from another site (Sec-Fetch-Site: cross-site)"
    origin = request.headers.get("origin")
    if origin is None:
        return None
    host = request.headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
        return f"the request comes from another origin ({origin[:100]})"
    return None


def csrf_matches(request: Request, echoed: str | None) -> bool:
    """Whether the CSRF token echoed (form field or header) is the cookie's."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not echoed:
        return False
    return hmac.compare_digest(cookie.encode(), echoed.encode())
