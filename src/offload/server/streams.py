"""The event streams of the HTTP API (server-sent events): where a stream starts, how it
catches up from the database and then follows the `Broadcaster` with no gap and no repeat,
and when it ends.

A stream resumes after the cursor of `Last-Event-ID` (or `?last_event_id=`). It reads the
database a page at a time until it has caught up, subscribes to live events, reads once more
to cover what arrived meanwhile, then sends live events after the last one it sent. A job's
stream ends after the job's terminal event; a stream whose buffer overflowed ends with a
`reconnect` event naming the last event it delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from offload.app import App
from offload.core.events import TERMINAL_KINDS, Event, EventCursor
from offload.server.broadcast import (
    PAGE,
    SEP,
    Batch,
    Broadcaster,
    EventFilter,
    Subscription,
    encode,
    reconnect,
)

T = TypeVar("T")

#: Seconds between the comment lines that keep an idle stream's proxies from closing it.
HEARTBEAT = 15
#: Seconds a client may take no bytes before its stream is cut off (its buffer is already
#: bounded; this frees the connection of a client that went away without a word).
SEND_TIMEOUT = 60.0


class Streams:
    """Opens the event streams of one App, sharing one `Broadcaster` per event loop."""

    def __init__(self, app: App, capacity: int) -> None:
        self.app = app
        self.capacity = capacity
        self._broadcaster: Broadcaster | None = None

    def broadcaster(self) -> Broadcaster:
        """The broadcaster of the running event loop (a new one if the loop changed, as
        between tests that each run their own loop)."""
        loop = asyncio.get_running_loop()
        if self._broadcaster is None or self._broadcaster.loop is not loop:
            if self._broadcaster is not None:
                self._broadcaster.release()
            self._broadcaster = Broadcaster(self.app, self.capacity)
        return self._broadcaster

    async def stop(self) -> None:
        """Stop the broadcaster, if one runs (the API's shutdown)."""
        if self._broadcaster is not None:
            await self._broadcaster.stop()
            self._broadcaster = None

    async def open(
        self,
        event_filter: EventFilter,
        after: EventCursor,
        *,
        until_terminal: bool,
        finished: bool = False,
    ) -> EventSourceResponse | None:
        """The stream of events matching `event_filter` after `after`, ending after a
        terminal event if `until_terminal`; None when such a stream is over already (none
        follows `after`, and the last event before was terminal, or the job was `finished`
        before this read). Bad filters raise here, before any byte of the answer is sent."""
        first = await self._call(self.app.events, after=after, limit=PAGE, **event_filter.kwargs())
        if not first and until_terminal and (finished or await self._ended_at(event_filter, after)):
            return None
        body = self._frames(event_filter, after, first, until_terminal)
        return EventSourceResponse(body, ping=HEARTBEAT, sep=SEP, send_timeout=SEND_TIMEOUT)

    async def _ended_at(self, event_filter: EventFilter, after: EventCursor) -> bool:
        """Whether the last event matching `event_filter` at or before `after` is
        terminal (read from the start: a job has few events)."""
        last: Event | None = None
        cursor = EventCursor.START
        while cursor < after:
            page = await self._call(
                self.app.events, after=cursor, limit=PAGE, **event_filter.kwargs()
            )
            seen = [event for event in page if event.cursor <= after]
            last = seen[-1] if seen else last
            if len(seen) < PAGE:
                break
            cursor = page[-1].cursor
        return last is not None and last.kind in TERMINAL_KINDS

    async def _frames(
        self,
        event_filter: EventFilter,
        after: EventCursor,
        first: list[Event],
        until_terminal: bool,
    ) -> AsyncIterator[bytes]:
        """The wire bytes of the stream: the database's pages until caught up, then live."""
        broadcaster = self.broadcaster()
        cursor, page = after, first
        subscription: Subscription | None = None
        try:
            while True:  # catch up
                chunk, cursor, ended = _wire(
                    [Batch.of([encode(e) for e in page])], cursor, until_terminal
                )
                if chunk:
                    yield chunk
                if ended:
                    return
                if len(page) < PAGE and subscription is not None:
                    if not subscription.overflowed:
                        break
                    broadcaster.unsubscribe(subscription)  # fell behind while catching up
                    subscription = None
                if len(page) < PAGE:
                    subscription = await broadcaster.subscribe(event_filter)
                page = await self._call(
                    self.app.events, after=cursor, limit=PAGE, **event_filter.kwargs()
                )
            live = subscription
            assert live is not None  # the catch-up ends only once subscribed
            while True:  # live
                batches = await live.take()
                if live.overflowed:
                    yield reconnect(cursor)
                    return
                chunk, cursor, ended = _wire(batches, cursor, until_terminal)
                if chunk:
                    yield chunk
                if ended:
                    return
        finally:
            if subscription is not None:
                broadcaster.unsubscribe(subscription)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in_threadpool(fn, *args, **kwargs)


def _wire(
    batches: list[Batch], cursor: EventCursor, until_terminal: bool
) -> tuple[bytes, EventCursor, bool]:
    """The wire bytes of the frames after `cursor` (one at or before it was sent already),
    the cursor after them, and whether the stream ends there (at a terminal event, with
    `until_terminal`). A batch wholly after `cursor` and not ending the stream goes as
    it is, its bytes shared with every stream of its filter."""
    wire = []
    for batch in batches:
        if not batch.frames:
            continue
        whole = batch.frames[0].cursor > cursor
        if whole and not (until_terminal and any(f.terminal for f in batch.frames)):
            wire.append(batch.data)
            cursor = batch.frames[-1].cursor
            continue
        for frame in batch.frames:
            if frame.cursor > cursor:
                wire.append(frame.data)
                cursor = frame.cursor
                if until_terminal and frame.terminal:
                    return b"".join(wire), cursor, True
    return b"".join(wire), cursor, False
