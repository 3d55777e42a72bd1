"""Live events in an API process: one `Broadcaster` reads each new event from the database
once and hands it, encoded once, to every stream whose filter it matches.

The broadcaster sleeps on the backend's event signal (`App.event_signal`, watched by the
event loop, never polled), reads what is new with `App.events` in a worker thread (the App
is sync), and re-reads every `EVENT_SAFETY_INTERVAL` seconds in case a signal was lost.
Each `Subscription` holds at most `capacity` events; one that would hold more is marked
`overflowed` and emptied, so a client that stops reading never grows the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from offload.app import App
from offload.backends.base import Listener
from offload.core.errors import OffloadError
from offload.core.events import EVENT_SAFETY_INTERVAL, TERMINAL_KINDS, Event, EventCursor

log = logging.getLogger("offload.server")

#: Events read from the database per call, by the broadcaster and by a stream catching up.
PAGE = 500
#: Seconds to wait before reading again after the database failed to answer.
RETRY_PAUSE = 1.0
#: The line separator of the wire format (sse-starlette's default).
SEP = "\r\n"


@dataclass(frozen=True)
class EventFilter:
    """Which events a stream wants: those matching every field given (None: any)."""

    job_id: int | None = None
    queue: str | None = None
    channel: str | None = None

    def key(self) -> tuple[int | None, str | None, str | None]:
        return (self.job_id, self.queue, self.channel)

    def kwargs(self) -> dict[str, int | str]:
        """The filter as keyword arguments of `App.events`."""
        given = {"job_id": self.job_id, "queue": self.queue, "channel": self.channel}
        return {name: value for name, value in given.items() if value is not None}


def keys_of(event: Event) -> Iterator[tuple[int | None, str | None, str | None]]:
    """Every filter key that `event` matches: each field either its value or None."""
    job_ids = {event.job_id, None}
    queues = {event.queue, None}
    channels = {event.channel, None}
    return itertools.product(job_ids, queues, channels)


@dataclass(frozen=True)
class Frame:
    """One event as it goes on the wire, with what a stream needs to know of it."""

    cursor: EventCursor
    data: bytes
    terminal: bool


@dataclass(frozen=True)
class Batch:
    """Consecutive frames for the streams of one filter, with their wire bytes joined once
    for all of them."""

    frames: list[Frame]
    data: bytes

    @classmethod
    def of(cls, frames: list[Frame]) -> Batch:
        return cls(frames, b"".join(frame.data for frame in frames))


def encode(event: Event) -> Frame:
    """`event` in the text/event-stream format: its cursor as `id`, its kind as `event`
    and its JSON as `data`."""
    data = orjson.dumps(event.to_json()).decode()
    wire = ServerSentEvent(data, event=event.kind, id=str(event.cursor), sep=SEP).encode()
    return Frame(event.cursor, wire, event.kind in TERMINAL_KINDS)


def reconnect(last: EventCursor) -> bytes:
    """The last event of a stream dropped for falling behind: reconnect after `last` (the
    last event delivered, or where a stream that delivered none began). It carries `last`
    as its id too, so an EventSource that received no event yet resumes there rather
    than from a new start."""
    data = orjson.dumps({"type": "slow_client", "last_event_id": str(last)}).decode()
    return ServerSentEvent(data, event="reconnect", id=str(last), sep=SEP).encode()


class Subscription:
    """The live events of one stream, at most `capacity` waiting at once."""

    def __init__(self, event_filter: EventFilter, capacity: int) -> None:
        self.filter = event_filter
        self.capacity = capacity
        self.overflowed = False
        self._batches: deque[Batch] = deque()
        self._waiting = 0
        self._ready = asyncio.Event()

    def offer(self, batch: Batch) -> None:
        """Keep `batch` for the stream; past `capacity` events, drop everything and mark
        the subscription overflowed instead (its stream then tells the client to
        reconnect)."""
        if self.overflowed:
            return
        self._waiting += len(batch.frames)
        if self._waiting > self.capacity:
            self.overflowed = True
            self._batches.clear()
        else:
            self._batches.append(batch)
        self._ready.set()

    async def take(self) -> list[Batch]:
        """Every batch waiting, once there is one (none: it overflowed)."""
        await self._ready.wait()
        self._ready.clear()
        batches = list(self._batches)
        self._batches.clear()
        self._waiting = 0
        return batches


class Broadcaster:
    """Reads new events of `app` once for the whole process and fans them out; started by
    the first `subscribe` on the running event loop, ended by `stop`."""

    def __init__(self, app: App, capacity: int) -> None:
        self.app = app
        self.capacity = capacity
        self.loop = asyncio.get_running_loop()
        self._subscribers: dict[tuple[int | None, str | None, str | None], set[Subscription]] = {}
        self._tail: EventCursor | None = None
        self._wake = asyncio.Event()
        self._signal: Listener | None = None
        self._starting: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self, event_filter: EventFilter) -> Subscription:
        """A subscription to every matching event after the ones already read: a stream
        subscribes first, then reads the database up to where it has caught up, so no
        event falls between the two."""
        if self._starting is None:
            self._starting = self.loop.create_task(self._start(), name="offload-events-start")
        # shielded: a client leaving mid-start must not leave the start half done
        await asyncio.shield(self._starting)
        subscription = Subscription(event_filter, self.capacity)
        self._subscribers.setdefault(event_filter.key(), set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        key = subscription.filter.key()
        subscribers = self._subscribers.get(key, set())
        subscribers.discard(subscription)
        if not subscribers:
            self._subscribers.pop(key, None)

    async def _start(self) -> None:
        """Listen, then learn the tail (an event added in between is read by the first
        wake-up rather than missed), then read on each wake-up. On failure the next
        subscriber starts again."""
        try:
            await self._listen()
            self._tail = await run_in_threadpool(self.app.event_tail)
        except BaseException:
            self.release()
            self._starting = None
            raise
        self._task = self.loop.create_task(self._run(), name="offload-events")

    async def stop(self) -> None:
        """Stop reading and release the signal."""
        for task in (self._starting, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, OffloadError):
                    await task
        self._starting = self._task = None
        self.release()

    async def _listen(self) -> None:
        """Watch the event signal, unless watched already (none while the database is
        unreachable: the safety interval's re-reads carry on meanwhile)."""
        if self._signal is not None:
            return
        try:
            signal = await run_in_threadpool(self.app.event_signal)
        except OffloadError as exc:
            log.warning(
                "event signal unavailable, reading every %ss: %s", EVENT_SAFETY_INTERVAL, exc
            )
            return
        self._signal = signal
        self.loop.add_reader(signal.fileno(), self._signalled)

    def release(self) -> None:
        """Stop watching the signal and close it (also once the event loop is gone, as
        when a test's loop ended: its tasks went with it)."""
        if self._signal is not None:
            if not self.loop.is_closed():
                self.loop.remove_reader(self._signal.fileno())
            self._signal.close()
            self._signal = None

    def _signalled(self) -> None:
        """The signal is readable: consume it and wake the reader (a lost signal is
        dropped, to be opened again by the reader)."""
        assert self._signal is not None
        try:
            self._signal.drain()
        except OffloadError as exc:
            log.warning("event signal lost: %s", exc)
            self.release()
        self._wake.set()

    async def _run(self) -> None:
        """Read what is new on each wake-up, and at least every safety interval."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), EVENT_SAFETY_INTERVAL)
            self._wake.clear()
            try:
                await self._listen()
                await self._read()
            except OffloadError as exc:
                log.warning("reading events failed, again in %ss: %s", RETRY_PAUSE, exc)
                await asyncio.sleep(RETRY_PAUSE)
            except Exception:  # any other failure too: a reader that ended would stall
                # every stream of this process for good, behind its pings
                log.exception("reading events failed, again in %ss", RETRY_PAUSE)
                await asyncio.sleep(RETRY_PAUSE)

    async def _read(self) -> None:
        """Fan out every event after the tail, a page at a time."""
        while True:
            assert self._tail is not None
            events = await run_in_threadpool(self.app.events, after=self._tail, limit=PAGE)
            self._fan_out(events)
            if events:
                self._tail = events[-1].cursor
            if len(events) < PAGE:
                return

    def _fan_out(self, events: list[Event]) -> None:
        """Hand each subscriber one batch of the events its filter matches."""
        matching: dict[tuple[int | None, str | None, str | None], list[Frame]] = {}
        for event in events:
            frame: Frame | None = None
            for key in keys_of(event):
                if key in self._subscribers:
                    frame = frame or encode(event)
                    matching.setdefault(key, []).append(frame)
        for key, frames in matching.items():
            batch = Batch.of(frames)
            for subscription in self._subscribers[key]:
                subscription.offer(batch)
