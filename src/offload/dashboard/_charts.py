"""The data of the overview's charts, internal: `App.stats` as the columns uPlot draws
(epoch seconds first, one list per series), read by static/dashboard.js."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from offload.dashboard._site import PageError, Site, Viewer

#: The windows the charts show, by name: their length and bucket, in seconds.
WINDOWS = {"hour": (3600, 60), "day": (86400, 900)}
#: The series of each StatsPoint, in the order the charts take them.
SERIES = (
    "enqueued",
    "started",
    "succeeded",
    "failed",
    "dead",
    "latency_p50",
    "latency_p95",
)


class Charts:
    """The charts' JSON route of one dashboard."""

    def __init__(self, site: Site) -> None:
        self.site = site

    async def data(self, request: Request, viewer: Viewer) -> Response:
        """GET /charts.json?window=hour|day&queue=NAME."""
        window = request.query_params.get("window", "hour")
        if window not in WINDOWS:
            raise PageError(400, f"window must be one of {', '.join(WINDOWS)}")
        length, bucket = WINDOWS[window]
        queue = request.query_params.get("queue") or None
        points = await self.site.call(  # reads only: a worker's scheduler rolls events up
            self.site.app.stats,
            timedelta(seconds=length),
            queue=queue,
            bucket_seconds=bucket,
            roll=False,
        )
        columns: dict[str, list[float | None]] = {"at": [p.at.timestamp() for p in points]}
        for name in SERIES:
            columns[name] = [getattr(p, name) for p in points]
        return JSONResponse({"window": window, "bucket_seconds": bucket, "columns": columns})
