"""Running the HTTP API with uvicorn, and the rule on where it may listen."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING

from offload.core.errors import ConfigurationError
from offload.server import asgi

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from offload.app import App

log = logging.getLogger("offload.server")

#: The signals that stop the server gracefully.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or `localhost`): reachable from this machine
    only. Any other name counts as reachable from elsewhere."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen(app: App, host: str, insecure: bool) -> bool:
    """Whether the API on `host` checks bearer tokens: yes when any token exists. Without
    one, refuse to listen beyond loopback unless `insecure` (then log a warning): anyone
    who reaches the port could enqueue, cancel and retry jobs."""
    if app.tokens_configured():
        return True
    if is_loopback(host):
        return False
    if not insecure:
        raise ConfigurationError(
            f"refusing to serve the HTTP API of {app!r} on {host}, which is not loopback, "
            "with no API token: create one (offload tokens create NAME --scopes ...) so "
            "that every request needs it, listen on 127.0.0.1 behind a proxy that "
            "authenticates, or pass --insecure to accept that anyone who reaches the port "
            "can change jobs"
        )
    log.warning(
        "serving the HTTP API on %s without credentials (--insecure, no API token): anyone "
        "who reaches the port can enqueue, cancel and retry jobs",
        host,
    )
    return False


def serve(
    app: App,
    *,
    host: str,
    port: int,
    insecure: bool,
    body_limit: int,
    body_timeout: float,
    event_buffer: int,
) -> None:
    """Serve the API of `app` on `host`:`port` until SIGINT or SIGTERM, then return (so
    the caller closes the App and exits 0, as `offload worker` does)."""
    auth = check_listen(app, host, insecure)  # decided once, so both agree
    api = asgi(
        app,
        body_limit=body_limit,
        body_timeout=body_timeout,
        auth=auth,
        event_buffer=event_buffer,
        loopback_only=not auth and is_loopback(host),
    )  # before uvicorn: a missing extra says so
    run_uvicorn(api, host, port)


def run_uvicorn(api: Starlette, host: str, port: int) -> None:
    """Serve `api` with uvicorn until SIGINT or SIGTERM, then return."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server without its last step: once shut down by a signal, uvicorn
        raises that signal again, ending the process by it instead of returning."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(api, host=host, port=port, log_level="info", access_log=False)
    Server(config).run()
