"""The dashboard's live parts, internal: server-sent events that carry re-rendered HTML
fragments, which htmx's SSE extension swaps into the page.

A stream subscribes to the API's `Broadcaster` (one database reader per process, woken by
the backend's event signal) only as a wake-up: on each batch of matching events, or every
`REFRESH` seconds (heartbeats and drain rates change without events), it renders its
fragment again, at most every `MIN_GAP` seconds, and sends it when it changed. Before each
render it checks the session again, and ends once that is expired or its token revoked. A job's
stream also sends its new events, read with `App.events` after the last one shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from offload.core.errors import OffloadError
from offload.core.events import EventCursor
from offload.core.states import JobState
from offload.dashboard._pages import Pages
from offload.dashboard._site import PageError, Site, Viewer
from offload.server.broadcast import EventFilter
from offload.server.streams import HEARTBEAT, SEND_TIMEOUT, Streams

#: Seconds between renders with no event (worker heartbeats, drain rates, ages).
REFRESH = 5.0
#: Seconds at least between two renders of one stream, however many events arrive.
MIN_GAP = 0.3


class Live:
    """The live fragment streams of one dashboard."""

    def __init__(self, site: Site, pages: Pages, streams: Streams) -> None:
        self.site = site
        self.pages = pages
        self.streams = streams

    async def overview(self, request: Request, viewer: Viewer) -> Response:
        async def render() -> str:
            queues = await self.site.call(self.site.app.queue_statuses)
            return self._fragment(request, "_queues.html", queues=queues, states=list(JobState))

        return self._stream(request, EventFilter(), {"queues": render})

    async def job(self, request: Request, viewer: Viewer) -> Response:
        job_id: int = request.path_params["job_id"]
        await self.pages.job_context(job_id)  # a 404 for an unknown job, before streaming
        shown = request.query_params.get("after") or str(EventCursor.START)
        cursor = EventCursor.parse(shown)

        async def panel() -> str:
            context = await self.pages.job_context(job_id)
            return self._fragment(request, "_job.html", **context)

        async def events() -> str:
            nonlocal cursor
            found = await self.site.call(self.site.app.events, after=cursor, job_id=job_id)
            if not found:
                return ""
            cursor = found[-1].cursor
            return self._fragment(request, "_events.html", events=found)

        return self._stream(
            request, EventFilter(job_id=job_id), {"job": panel, "events": events}, append={"events"}
        )

    async def workflow(self, request: Request, viewer: Viewer) -> Response:
        workflow_id: int = request.path_params["workflow_id"]
        await self.site.call(self.site.app.workflow_status, workflow_id)  # 404 if unknown

        async def render() -> str:
            from offload.dashboard._graph import layout

            status = await self.site.call(self.site.app.workflow_status, workflow_id)
            return self._fragment(
                request, "_workflow.html", workflow=status, graph=layout(status.nodes)
            )

        return self._stream(request, EventFilter(), {"workflow": render})

    def _fragment(self, request: Request, name: str, **context: Any) -> str:
        return bytes(self.site.render(request, name, **context).body).decode()

    def _stream(
        self,
        request: Request,
        event_filter: EventFilter,
        renders: dict[str, Callable[[], Awaitable[str]]],
        append: set[str] | None = None,
    ) -> Response:
        """An SSE answer sending each of `renders` (by event name) when it changed: a
        name in `append` sends only what is new, added to what the page shows."""
        append = append or set()

        async def frames() -> AsyncIterator[ServerSentEvent]:
            broadcaster = self.streams.broadcaster()
            subscription = await broadcaster.subscribe(event_filter)
            last: dict[str, str] = {}
            try:
                while True:
                    started = time.monotonic()
                    if not isinstance(await self.site.viewer(request), Viewer):
                        return  # the session expired or its token was revoked: no more
                    for name, render in renders.items():
                        try:
                            html = await render()
                        except (PageError, OffloadError):  # gone (deleted, pruned): the end
                            return
                        if name in append:
                            if html:
                                yield ServerSentEvent(html, event=name)
                        elif html != last.get(name):
                            last[name] = html
                            yield ServerSentEvent(html, event=name)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(subscription.take(), REFRESH)
                    if subscription.overflowed:  # only a wake-up: start afresh
                        broadcaster.unsubscribe(subscription)
                        subscription = await broadcaster.subscribe(event_filter)
                    await asyncio.sleep(max(0.0, MIN_GAP - (time.monotonic() - started)))
            finally:
                broadcaster.unsubscribe(subscription)

        return EventSourceResponse(frames(), ping=HEARTBEAT, send_timeout=SEND_TIMEOUT)
