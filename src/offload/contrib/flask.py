"""Flask: an extension that holds the offload App, and mounts its HTTP API.

    from offload.contrib.flask import Offload

    web = Flask(__name__)
    Offload(jobs, web)                # or: ext = Offload(jobs); ext.init_app(web)

Views enqueue as any code does (`task.enqueue(...)`: Flask views are synchronous); the
App is `current_app.extensions["offload"].app`. With `mount` (default "/offload"), the
HTTP API (`offload.asgi(app)`) answers under that prefix, through the a2wsgi adapter:
`pip install 'offload[flask]'`. It needs a bearer token on every route unless
`api_options={"auth": False}` says the host guards the mount itself; with no token created,
mounting it open by default is refused.
"""

from __future__ import annotations

from typing import Any

from offload.app import App
from offload.core.errors import ConfigurationError, ExtraMissing, _did_you_mean, shorten

#: The keyword options of `offload.asgi` that `api_options` may carry.
API_OPTIONS = ("auth", "body_limit", "body_timeout", "event_buffer")


class Offload:
    """The extension: `Offload(app, flask_app)` or `Offload(app).init_app(flask_app)`."""

    def __init__(
        self,
        app: App,
        flask_app: Any = None,
        *,
        mount: str | None = "/offload",
        check: bool = True,
        api_options: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(app, App):
            raise ConfigurationError(f"Offload takes an offload.App, got {shorten(app)}")
        if mount is not None and (
            not isinstance(mount, str) or not mount.startswith("/") or mount.endswith("/")
        ):
            raise ConfigurationError(
                f"mount must be a path like '/offload' (or None), got {shorten(mount)}"
            )
        for key in api_options or {}:
            if key not in API_OPTIONS:
                hint = _did_you_mean(key, list(API_OPTIONS), "options")
                raise ConfigurationError(f"offload.asgi has no option {key!r}{hint}")
        self.app = app
        self.mount = mount
        self.check = check
        self.api_options = dict(api_options or {})
        if flask_app is not None:
            self.init_app(flask_app)

    def init_app(self, flask_app: Any) -> None:
        """Register on `flask_app`: check the database now (unless `check` is False), keep
        the extension in `flask_app.extensions["offload"]`, and mount the HTTP API."""
        if self.check:
            self.app.check()
        flask_app.extensions["offload"] = self
        if self.mount is None:
            return
        try:
            from a2wsgi import ASGIMiddleware
            from werkzeug.middleware.dispatcher import DispatcherMiddleware
        except ModuleNotFoundError as exc:
            raise ExtraMissing.of("mounting the HTTP API in Flask", "flask", exc) from None
        from offload.server import asgi

        options = dict(self.api_options)
        if "auth" not in options:  # as `offload serve` beyond loopback: tokens, or say so
            if not self.app.tokens_configured():
                raise ConfigurationError(
                    "mounting offload's HTTP API in Flask with no API token would let anyone "
                    "who reaches the site enqueue, cancel and read jobs: create one (offload "
                    "tokens create NAME --scopes ...), or pass api_options={'auth': False} if "
                    "the host guards the mount itself"
                )
            options["auth"] = True
        api: Any = ASGIMiddleware(asgi(self.app, **options))  # type: ignore[arg-type]
        flask_app.wsgi_app = DispatcherMiddleware(flask_app.wsgi_app, {self.mount: api})


__all__ = ["API_OPTIONS", "Offload"]
