"""Job events as plain values (no I/O): the cursor that orders them, the event, channels.

Every change of a job's state is stored as an event in the same transaction as the change
(written by the statements that make it: the backend conformance suite checks every path),
and applications add their own with `App.notify`. Readers page through them with an
`EventCursor`, from any process or replica.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeAlias

from offload.core.errors import BadEventId, ValidationError, shorten

#: Any value JSON can carry (what `App.notify` stores and an event's `data` holds).
JSONValue: TypeAlias = dict[str, Any] | list[Any] | str | int | float | bool | None

#: Seconds between re-reads of a live stream when no notification came: notifications are
#: hints (a NOTIFY or a wake-up can be lost), so a reader also looks this often regardless.
EVENT_SAFETY_INTERVAL = 5.0

#: Every kind of event, in the order of a job's life; `notify` is the application's own.
EVENT_KINDS = (
    "enqueued",
    "released",
    "started",
    "progress",
    "retrying",
    "succeeded",
    "dead",
    "cancelled",
    "shed",
    "requeued",
    "notify",
)
#: Kinds after which a job changes no more, unless someone retries it.
TERMINAL_KINDS = frozenset({"succeeded", "dead", "cancelled"})

#: The longest channel name, in characters.
MAX_CHANNEL = 255
#: The most events one read returns.
MAX_EVENT_PAGE = 10_000

_CURSOR = re.compile(r"(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,18})")
_MAX_TX = 2**64 - 1  # PostgreSQL's xid8 is unsigned
_MAX_POSITION = 2**63 - 1  # a bigint


@dataclass(frozen=True, slots=True, order=True)
class EventCursor:
    """A place in the event sequence, ordered by (tx, position); opaque to clients.

    On PostgreSQL positions come from a sequence when rows are inserted, but transactions
    commit out of order: a reader past position 101 would miss 100 committed later. Each
    event therefore also carries its transaction's id, and readers return only events of
    transactions older than every one still open, in (tx, position) order. On SQLite (one
    writer at a time, commits in position order) tx is always 0.
    """

    tx: int
    position: int

    #: Before every event still retained.
    START: ClassVar[EventCursor]

    def __str__(self) -> str:
        return f"{self.tx}-{self.position}"

    @classmethod
    def parse(cls, text: str) -> EventCursor:
        """The cursor of an event's text form `<tx>-<position>` (an SSE id, a
        `Last-Event-ID`); anything else raises `BadEventId` saying what is wrong."""
        if not isinstance(text, str):
            raise BadEventId(shorten(text), f"expected text, got {type(text).__name__}")
        found = _CURSOR.fullmatch(text)
        if found is None:
            raise BadEventId(
                text, "expected two decimal numbers joined by '-', as an event's id gives it"
            )
        tx, position = int(found[1]), int(found[2])
        if tx > _MAX_TX or position > _MAX_POSITION:
            raise BadEventId(text, "a number is out of range")
        return cls(tx, position)


EventCursor.START = EventCursor(0, 0)


@dataclass(frozen=True, slots=True)
class Event:
    """One stored event: a job's change (its state after it) or an application's notify.

    `data` is the progress value for `progress`, the application's value for `notify`,
    `{"error": message}` for `retrying` and `dead`, else `{}`.
    """

    cursor: EventCursor
    kind: str
    at: datetime
    job_id: int | None
    task: str | None
    queue: str | None
    channel: str | None
    state: str | None
    attempt: int | None
    data: JSONValue

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view: `id` is the cursor's text, `at` ISO 8601 in UTC."""
        return {
            "id": str(self.cursor),
            "kind": self.kind,
            "at": self.at.isoformat(),
            "job_id": self.job_id,
            "task": self.task,
            "queue": self.queue,
            "channel": self.channel,
            "state": self.state,
            "attempt": self.attempt,
            "data": self.data,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Event:
        """The event `to_json` showed (as an event stream sends it); a body that is not one
        raises BadEventId or ValidationError naming what is wrong."""
        try:
            return cls(
                cursor=EventCursor.parse(body["id"]),
                kind=str(body["kind"]),
                at=datetime.fromisoformat(body["at"]),
                job_id=body.get("job_id"),
                task=body.get("task"),
                queue=body.get("queue"),
                channel=body.get("channel"),
                state=body.get("state"),
                attempt=body.get("attempt"),
                data=body.get("data"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"not an event: {shorten(body)} ({exc})") from None


def check_channel(value: object) -> str:
    """A channel name: 1 to MAX_CHANNEL characters of valid Unicode text; else a
    `ValidationError` naming the field."""
    if not isinstance(value, str):
        raise ValidationError(f"channel must be a str, got {shorten(value)}")
    if not 1 <= len(value) <= MAX_CHANNEL:
        raise ValidationError(
            f"channel must be 1-{MAX_CHANNEL} characters, got {len(value)}: {shorten(value)}"
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError(
                f"channel {shorten(value)} contains a lone surrogate at index {exc.start}, "
                "which is not valid Unicode text"
            ) from None
    return value


def check_cursor(value: object) -> EventCursor:
    """An `after=` given to a read: an EventCursor (text is parsed, naming what is wrong)."""
    if isinstance(value, EventCursor):
        return value
    if isinstance(value, str):
        return EventCursor.parse(value)
    raise ValidationError(f"after must be an EventCursor, got {shorten(value)}")


__all__ = [
    "EVENT_KINDS",
    "EVENT_SAFETY_INTERVAL",
    "MAX_CHANNEL",
    "MAX_EVENT_PAGE",
    "TERMINAL_KINDS",
    "Event",
    "EventCursor",
    "JSONValue",
    "check_channel",
    "check_cursor",
]
