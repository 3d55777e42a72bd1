"""Storage backends behind one protocol; `open_backend` picks one from a URL."""

from __future__ import annotations

from offload.backends.base import Backend
from offload.core.errors import ConfigurationError


def open_backend(url: str) -> Backend:
    """Build the backend a URL names (connections are opened on first use)."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"malformed database URL {url!r}: expected sqlite:///path.db or postgresql://..."
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        from offload.backends.sqlite import SQLiteBackend

        return SQLiteBackend(url)
    if scheme in ("postgresql", "postgres"):
        from offload.backends.postgres import PostgresBackend

        return PostgresBackend(url)
    raise ConfigurationError(
        f"unsupported database URL scheme {scheme!r} in {url.rsplit('@', maxsplit=1)[-1]!r}: "
        "use sqlite:/// or postgresql://"
    )
