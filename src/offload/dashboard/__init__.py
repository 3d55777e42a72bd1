"""The dashboard: server-rendered pages (Jinja2, autoescaped) on the HTTP API's ASGI app,
at `/` of `offload serve` and under the prefix a host app mounts it at.

Pages: overview (queues, charts), jobs (filters, bulk actions), one job, dead jobs,
workflows, cron, workers, topics. Live parts are htmx fragments sent over server-sent
events; charts are uPlot, fed by a JSON route. Every script and style is a vendored or own
file under static/ (no inline script or style: the Content-Security-Policy forbids them).

Like every face, it calls `offload.App` and holds no rules: what a job may become, what a
bulk operation takes, when a worker is lost are the App's. When the API checks tokens, a
user signs in with an API token (see `_security`); the read scope shows pages, the admin
scope acts. Needs the `offload[server]` extra (Jinja2 among it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from offload.app import App
    from offload.server.streams import Streams


def routes(app: App, auth: bool, streams: Streams) -> list[BaseRoute]:
    """The dashboard's routes on `app` (sign-in needed if `auth`), its live parts fed by
    the API's `streams`."""
    from offload.dashboard._routes import build

    return build(app, auth, streams)


__all__ = ["routes"]
