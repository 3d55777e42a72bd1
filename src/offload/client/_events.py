"""Reading an event stream of the API (server-sent events) without gaps or repeats: the
sans-I/O state `Client.events` and `AsyncClient.events` share. Each connection asks for the
events after the last one received (`Last-Event-ID`); a dropped connection, a server
restart or a `reconnect` event (a client that fell behind) only means connecting again."""

from __future__ import annotations

import random
import time
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from httpx_sse import ServerSentEvent

from offload.client._operations import Send, error_from, transport_error
from offload.core.errors import ConfigurationError, OffloadError
from offload.core.events import TERMINAL_KINDS, Event, check_channel, check_cursor
from offload.core.options import check_name

#: Seconds before the first reconnection after a failure, and the most between two.
FIRST_PAUSE, LONGEST_PAUSE = 0.1, 5.0
#: Answers of a server (or a proxy before it) that is down for a while: tried again.
TRANSIENT = frozenset({502, 503, 504})


class Transient(Exception):
    """A connection answered with a passing failure (`error`): tried again, as a dropped
    connection is, until connections have failed for `retry_for` seconds."""

    def __init__(self, error: OffloadError) -> None:
        super().__init__(str(error))
        self.error = error


class EventStream:
    """One logical stream: of a job (`job_id`: it ends after the job's terminal event) or
    of every job change and notify matching `queue` and `channel`. A connection that fails
    is tried again for up to `retry_for` seconds of failures in a row."""

    def __init__(
        self,
        job_id: int | None,
        queue: str | None,
        channel: str | None,
        last_event_id: str | None,
        retry_for: float,
    ) -> None:
        if job_id is not None and (queue is not None or channel is not None):
            raise ConfigurationError("give a job_id, or queue and/or channel, not both")
        if job_id is not None and (isinstance(job_id, bool) or not isinstance(job_id, int)):
            raise ConfigurationError(f"job_id must be an int, got {job_id!r}")
        if isinstance(retry_for, bool) or not isinstance(retry_for, int | float) or retry_for < 0:
            raise ConfigurationError(f"retry_for must be seconds >= 0, got {retry_for!r}")
        self.job_id = job_id
        self.path = "/v1/events" if job_id is None else f"/v1/jobs/{job_id}/events"
        self.params: dict[str, str] = {}
        if queue is not None:
            self.params["queue"] = check_name("queue", queue, ConfigurationError)
        if channel is not None:
            self.params["channel"] = check_channel(channel)
        #: The id of the last event received: where the next connection resumes.
        self.last = None if last_event_id is None else str(check_cursor(last_event_id))
        self.retry_for = float(retry_for)
        #: True once the stream has nothing more to give (a job's terminal event, or 204).
        self.done = False
        self._failing_since: float | None = None
        self._pause = FIRST_PAUSE

    def headers(self) -> dict[str, str]:
        """The headers of the next connection."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.last is not None:
            headers["Last-Event-ID"] = self.last
        return headers

    def url(self) -> str:
        """The path of the stream, with its filters."""
        if not self.params:
            return self.path
        return (
            self.path + "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in self.params.items())
        )

    def opened(self, answer: httpx.Response) -> None:
        """Take a connection's answer (an error answer's body already read): raise the
        error it stands for (`Transient` for a passing one); a 204 is a job stream with
        nothing after `last`. An open stream ends a run of failed connections; the pause
        between them shrinks again only once an event came, so a stream that opens and
        drops at once is not reconnected ten times a second."""
        if answer.status_code == 204:
            self.done = True
        elif answer.status_code in TRANSIENT:
            raise Transient(error_from(answer))
        elif answer.status_code != 200:
            raise error_from(answer)
        else:
            self._failing_since = None

    def received(self, message: ServerSentEvent) -> Event | None:
        """The event a message carries (None for a `reconnect` notice: the server closes
        the connection next, and the stream resumes from `last`)."""
        if message.event == "reconnect":
            # it names the last event delivered, or where a stream that delivered none
            # began: resume there, not from a new start that would skip what came between
            resume = orjson.loads(message.data).get("last_event_id")
            if resume is not None:
                self.last = str(check_cursor(resume))
            return None
        body: Any = orjson.loads(message.data)
        event = Event.from_json(body)
        self.last = str(event.cursor)
        self._pause = FIRST_PAUSE
        if self.job_id is not None and event.kind in TERMINAL_KINDS:
            self.done = True
        return event

    def failed(self, exc: httpx.TransportError | Transient) -> float:
        """Seconds to wait before connecting again after `exc`; once connections have
        failed for `retry_for` seconds in a row, the error (BackendUnavailable for no
        answer)."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since >= self.retry_for:
            if isinstance(exc, Transient):
                raise exc.error from None
            raise transport_error(exc, Send("GET", self.path)) from None
        pause = self._pause * random.uniform(1.0, 1.25)
        self._pause = min(self._pause * 2, LONGEST_PAUSE)
        return min(pause, max(0.0, self._failing_since + self.retry_for - now))
