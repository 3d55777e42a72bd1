"""Topics as plain values (no I/O): names, messages, where a group starts, and listings.

A topic is an ordered log of JSON messages, stored once. Each message gets the next
offset of its topic (1, 2, 3, ... with no gaps: publishes to one topic take turns on the
topic's row, so offsets are given in commit order and a reader never passes one that may
still appear). A consumer group has a cursor, the offset of the last message handed to
it; its members take the messages after the cursor as ordinary jobs of the subscriber's
task (a "pump"), so leases, retries, backoff and dead jobs work as for any job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

import orjson

from offload.core.errors import ConfigurationError, ValidationError, _did_you_mean, shorten
from offload.core.flow import QueuePolicy

#: Topic and group names: what `offload topics` shows and a queue name can embed.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: The longest topic or group name.
MAX_NAME = 100
#: The longest message key.
MAX_KEY = 200

#: Where a new group's cursor starts: "latest" (only messages published from now on),
#: "earliest" (every message retained), an offset (the messages after it), or a time (the
#: messages published at or after it, even if it is still to come: until then messages
#: are passed over). A group that exists keeps its cursor.
Start: TypeAlias = Literal["latest", "earliest"] | int | datetime


def check_topic_name(kind: str, name: object) -> str:
    """A topic or group name (`kind`): 1-100 of letters, digits, ".", "_" and "-",
    starting with a letter or digit; else ValidationError."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise ValidationError(f"{kind} name must be 1-{MAX_NAME} characters, got {shorten(name)}")
    if NAME_PATTERN.fullmatch(name) is None:
        raise ValidationError(
            f"{kind} name {shorten(name)} may hold only letters, digits, '.', '_' and '-', "
            "and starts with a letter or digit"
        )
    return name


def check_key(key: object) -> str | None:
    """A message key: None or text of at most 200 characters."""
    if key is None:
        return None
    if not isinstance(key, str) or len(key) > MAX_KEY or "\x00" in key:
        raise ValidationError(
            f"a message key must be None or text of at most {MAX_KEY} characters, "
            f"got {shorten(key)}"
        )
    return key


def check_start(start: object) -> Start:
    """A group's `start`; else ValidationError."""
    if start in ("latest", "earliest") or (isinstance(start, datetime) and start.tzinfo):
        return start
    if isinstance(start, int) and not isinstance(start, bool) and 0 <= start < 2**63:
        return start
    raise ValidationError(
        f"start must be 'latest', 'earliest', an offset >= 0 or an aware datetime, "
        f"got {shorten(start)}"
    )


def check_offset(offset: object) -> int:
    """An offset to move a cursor to: an int >= 0."""
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 2**63:
        raise ValidationError(f"an offset must be an int >= 0, got {shorten(offset)}")
    return offset


def group_queue(topic: str, group: str) -> str:
    """The queue a group's deliveries wait in (names hold no ":", so it names one group)."""
    return f"topic:{topic}:{group}"


def is_group_queue(queue: str) -> bool:
    """Whether `queue` is a group's (`group_queue`): only a pump fills it."""
    return queue.startswith("topic:")


def check_group_policy(queue: str, policy: QueuePolicy) -> None:
    """A group queue takes every setting of a queue but those that refuse or shed new jobs:
    its jobs are messages the log holds already, which the pump hands out as far as
    `max_depth` leaves room (bounded deliveries in flight) and otherwise leaves in the log.
    Refusing them would stop the pump; a shed delivery of an ordered group would hold its
    key until the sweep. ValidationError naming the queue and the setting otherwise."""
    if not is_group_queue(queue):
        return
    for name in ("admit_depth", "max_wait", "shed_depth"):
        if getattr(policy, name) is not None:
            raise ValidationError(
                f"queue {queue!r} is a consumer group's: {name} cannot apply to it (its "
                "deliveries are messages stored already, never refused nor shed); bound "
                "the deliveries waiting with max_depth instead"
            )


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a topic, as a subscriber receives it."""

    topic: str
    offset: int
    key: str | None
    value: Any
    published_at: datetime

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        """The message of a delivery job's argument: {"topic", "offset", "key",
        "published_at" (ISO 8601), "value_json" (the value as JSON text: PostgreSQL's json
        operators, which read the key of an ordered group's deliveries, cannot parse a
        \\u0000 escape, and a string holds one as plain text)}."""
        return cls(
            str(data["topic"]),
            int(data["offset"]),
            data["key"],
            orjson.loads(data["value_json"]),
            datetime.fromisoformat(data["published_at"]),
        )


@dataclass(frozen=True, slots=True)
class Subscription:
    """A consumer group as the code declares it (`App.subscriber`): stored at the app's
    first use, served by the workers that load the app. `publish_to`: the topic a
    delivery's returned value is published to, in the transaction that acknowledges it
    (see `offload.runtime.delivery`)."""

    topic: str
    group: str
    start: Start = "latest"
    ordered_by_key: bool = False
    publish_to: str | None = None

    @property
    def queue(self) -> str:
        """The queue its deliveries wait in."""
        return group_queue(self.topic, self.group)


def check_groups(groups: Sequence[str] | None, declared: Sequence[Subscription]) -> None:
    """Groups a worker is told to serve (None: all) must be groups the app declares."""
    known = sorted({subscription.group for subscription in declared})
    for name in groups or ():
        if name not in known:
            hint = _did_you_mean(name, known, "groups")
            raise ConfigurationError(f"no subscriber of this app has group {name!r}{hint}")


@dataclass(frozen=True, slots=True)
class GroupState:
    """One consumer group as `offload topics` shows it."""

    topic: str
    name: str
    #: The offset of the last message handed to the group (0: none yet).
    cursor: int
    ordered_by_key: bool
    #: Messages published and not yet handed out, plus deliveries not yet over.
    lag: int
    #: Deliveries that ended dead (kept, visible, not blocking the group).
    dead: int
    #: Messages retention removed before the group had them.
    skipped: int


@dataclass(frozen=True, slots=True)
class TopicState:
    """One topic: its size, retention and groups."""

    name: str
    #: Messages retained, and the offsets of the oldest and newest (0 when none).
    messages: int
    first: int
    last: int
    #: Retention: seconds a message is kept, and how many at most (None: no bound).
    retention_seconds: float | None
    retention_messages: int | None
    groups: list[GroupState]
