"""The example page's backend: one offload App with a report task, and a web app that
serves the page at `/` and mounts the HTTP API under `/api` (one origin, so the page needs
no CORS). Run it from the repository's root:

    OFFLOAD_URL=sqlite:///report.db offload --app examples.report.app:app migrate
    OFFLOAD_URL=sqlite:///report.db offload --app examples.report.app:app worker &
    OFFLOAD_URL=sqlite:///report.db uvicorn examples.report.app:web

then open http://127.0.0.1:8000/ and press "Build report".
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

import offload

app = offload.App(os.environ.get("OFFLOAD_URL"))

#: Seconds each step of the report takes: long enough to watch the bar move.
STEP_SECONDS = float(os.environ.get("REPORT_STEP_SECONDS", "0.3"))
PAGE = Path(__file__).with_name("index.html")


@app.task(name="reports.build")
def build_report(user: str, rows: int = 5) -> dict[str, object]:
    """Pretend to build a report of `rows` rows, reporting progress after each one."""
    job = offload.current_job()
    for done in range(1, rows + 1):
        time.sleep(STEP_SECONDS)
        job.progress(done / rows, f"{done} of {rows} rows")
    return {"user": user, "rows": rows, "total": rows * (rows + 1) // 2}


def page(request: object) -> FileResponse:
    """The static example page."""
    return FileResponse(PAGE, media_type="text/html")


def web_app() -> ASGIApp:
    """The site: the page at `/`, offload's HTTP API under `/api`."""
    return Starlette(routes=[Route("/", page), Mount("/api", app=offload.asgi(app))])


web = web_app()
