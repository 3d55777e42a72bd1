"""Storage backends behind one protocol; `open_backend` picks one from a URL."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from offload.backends.base import Backend
from offload.core.errors import ConfigurationError

#: libpq settings that hold a secret (the server's password, the client key's passphrase).
_SECRETS = frozenset({"password", "sslpassword"})
#: `password=...` in a libpq key=value string: a bare word or a quoted value.
_SECRET_PAIR = re.compile(r"(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)")


def redact(url: str) -> str:
    """`url` with every password replaced by `***`, safe for messages and logs.

    Covers the user part (`user:secret@host`) and query parameters (`?password=secret`) of
    a URL, and `password=secret` pairs of a key=value string; a URL too broken to parse
    is not shown beyond its scheme.
    """
    if "://" not in url:
        return _SECRET_PAIR.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host
        return url.split("://", 1)[0] + "://..."
    netloc = parts.netloc
    if password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = user.split(":", 1)[0] + ":***@" + host
    query = "&".join(
        pair.split("=", 1)[0] + "=***"
        if unquote(pair.split("=", 1)[0]).strip().lower() in _SECRETS
        else pair
        for pair in parts.query.split("&")
    )
    # Rebuilt by hand: urlunsplit would drop the "//" of an empty host (postgresql:///db).
    shown = f"{url.split('://', 1)[0]}://{netloc}{parts.path}"
    return shown + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")


def open_backend(url: str) -> Backend:
    """Build the backend a URL names (connections are opened on first use)."""
    if not isinstance(url, str) or "://" not in url:
        shown = redact(url) if isinstance(url, str) else url
        raise ConfigurationError(
            f"malformed database URL {shown!r}: expected sqlite:///path.db or postgresql://..."
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        from offload.backends.sqlite import SQLiteBackend

        return SQLiteBackend(url)
    if scheme in ("postgresql", "postgres"):
        from offload.backends.postgres import PostgresBackend

        return PostgresBackend(url)
    raise ConfigurationError(
        f"unsupported database URL scheme {scheme!r} in {redact(url)!r}: "
        "use sqlite:/// or postgresql://"
    )
