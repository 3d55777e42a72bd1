"""Starlette with offload: a route enqueues a task, the host's own lifespan runs inside
offload's, and offload's HTTP API is mounted under /offload. Run it from the repository's
root:

    export OFFLOAD_URL=sqlite:///mail.db
    offload --app examples.starlette_app.app:jobs worker &
    uvicorn examples.starlette_app.app:web
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import offload
from offload.contrib.asgi import lifespan

jobs = offload.App(os.environ.get("OFFLOAD_URL"))


@jobs.task(name="mail.welcome", queue="mail")
def send_welcome(email: str) -> str:
    """Send the welcome mail (here: say what would be sent)."""
    return f"welcome mail to {email}"


async def signup(request: Request) -> JSONResponse:
    """Sign a user up; the welcome mail goes out in the background."""
    body = await request.json()
    handle = await send_welcome.enqueue_async(body["email"])
    return JSONResponse({"job_id": handle.id, "site": request.state.site}, status_code=202)


@asynccontextmanager
async def site(_: Starlette) -> AsyncIterator[dict[str, str]]:
    """The host's own lifespan: its state reaches the handlers beside `offload`."""
    yield {"site": "example"}


api = offload.asgi(jobs, auth=False)
web = Starlette(
    routes=[Route("/signup", signup, methods=["POST"]), Mount("/offload", app=api)],
    lifespan=lifespan(jobs, api=api, inner=site),
)
