"""The dashboard's route table, internal: every page, action, live stream and static file,
each behind `Site.guard`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from offload.app import App
from offload.dashboard import _security as security
from offload.dashboard._actions import Actions
from offload.dashboard._charts import Charts
from offload.dashboard._live import Live
from offload.dashboard._pages import Pages
from offload.dashboard._site import Handler, Site, Viewer, safe_next
from offload.server.streams import Streams


class _Headed:
    """An ASGI app whose answers carry the dashboard's security headers (static files)."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                for name, value in security.HEADERS.items():
                    if name != "Cache-Control":
                        headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.inner(scope, receive, sending)


def build(app: App, auth: bool, streams: Streams) -> list[BaseRoute]:
    site = Site(app, auth)
    pages = Pages(site)
    actions = Actions(site, pages)
    live = Live(site, pages, streams)
    charts = Charts(site)

    async def login_form(request: Request, viewer: Viewer) -> Response:
        """GET /login: the sign-in form (200: it was asked for)."""
        message = None if auth else "Tokens are not checked here: no need to sign in."
        wanted = safe_next(request, request.query_params.get("next"))
        return site.render(request, "login.html", message=message, next=wanted)

    def page(path: str, handler: Handler, name: str | None = None) -> Route:
        return Route(path, site.guard(handler), methods=["GET"], name=name)

    def action(path: str, handler: Handler, open_: bool = False) -> Route:
        return Route(path, site.guard(handler, action=True, open_=open_), methods=["POST"])

    static = StaticFiles(packages=[("offload.dashboard", "static")])
    return [
        page("/", pages.overview, "dashboard"),
        page("/jobs", pages.jobs),
        page("/jobs/bulk", actions.bulk_confirm),
        page("/jobs/{job_id:int}", pages.job),
        page("/dead", pages.dead),
        page("/workflows", pages.workflows),
        page("/workflows/{workflow_id:int}", pages.workflow),
        page("/cron", pages.cron),
        page("/workers", pages.workers),
        page("/topics", pages.topics),
        page("/bulk/{run_id:int}", actions.bulk_progress),
        page("/charts.json", charts.data),
        page("/live/overview", live.overview),
        page("/live/jobs/{job_id:int}", live.job),
        page("/live/workflows/{workflow_id:int}", live.workflow),
        Route("/login", site.guard(login_form, open_=True), methods=["GET"]),
        action("/login", actions.login, open_=True),
        action("/logout", actions.logout, open_=True),
        action("/jobs/selected", actions.selected),
        action("/jobs/bulk", actions.bulk_start),
        action("/jobs/{job_id:int}/{operation}", actions.job_action),
        action("/queues/{operation:str}", actions.queue_action),
        action("/cron/{operation:str}", actions.cron_action),
        action("/workflows/{workflow_id:int}/cancel", actions.workflow_cancel),
        action("/topics/replay", actions.replay),
        Mount("/static", app=_Headed(static), name="static"),
    ]
