"""Reading server-sent events in tests: each message of a text/event-stream response, its
`data` decoded from JSON, as the EventSource of a browser would dispatch it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Message:
    """One dispatched event: its `event` name, its `id` (None: the message set none) and
    its data, decoded from JSON."""

    event: str
    id: str | None
    data: Any


def messages(response: httpx.Response) -> Iterator[Message]:
    """The messages of `response` as they arrive, until the server ends it; comment lines
    (heartbeats) are skipped."""
    fields: dict[str, list[str]] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                ids = fields.get("id", [None])
                yield Message(
                    fields.get("event", ["message"])[-1],
                    ids[-1],
                    json.loads("\n".join(fields["data"])),
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
