"""A subscriber's side of a delivery: the job's message as a `Message`, and what the
subscriber publishes (`offload.current_message().publish`).

What it publishes cannot be written from the task: the messages must land in the
transaction that acknowledges the delivery, or a crash between the two would lose or
double them downstream. So the task's result travels as an envelope, {"result": value,
"publish": [[topic, key, value], ...]}, through any executor, and the worker unwraps it
(`unwrap`) into the outcome it records, the messages with it (`Outcome.publish`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson

from offload.core import serialization
from offload.core.errors import OffloadError
from offload.core.topics import Message, check_key, check_topic_name

_current: ContextVar[Delivery | None] = ContextVar("offload_current_message", default=None)


@dataclass
class Delivery:
    """The message a subscriber is handling, and the messages it publishes with its ack."""

    message: Message
    published: list[tuple[str, str | None, Any]] = field(default_factory=list)

    def publish(self, topic: str, value: Any, key: str | None = None) -> None:
        """Publish `value` to `topic` when this message is acknowledged, in the same
        transaction: once, however often the delivery runs. Bad input raises at once."""
        check_topic_name("topic", topic)
        check_key(key)
        serialization.dumps(value, "message")
        self.published.append((topic, key, value))


def current_message() -> Delivery:
    """The delivery the calling subscriber is handling; raises outside one."""
    delivery = _current.get()
    if delivery is None:
        raise OffloadError("current_message() was called outside a subscriber")
    return delivery


def deliver(fn: Callable[[Message], Any]) -> Callable[[dict[str, Any]], Any]:
    """The task function of a subscriber: calls `fn` with the delivery job's argument as a
    `Message` (awaited when `fn` is async) and returns the envelope of its result."""
    if inspect.iscoroutinefunction(fn):

        async def run_async(data: dict[str, Any]) -> Any:
            delivery = Delivery(Message.from_json(data))
            token = _current.set(delivery)
            try:
                return _envelope(await fn(delivery.message), delivery)
            finally:
                _current.reset(token)

        return functools.wraps(fn)(run_async)

    def run(data: dict[str, Any]) -> Any:
        delivery = Delivery(Message.from_json(data))
        token = _current.set(delivery)
        try:
            return _envelope(fn(delivery.message), delivery)
        finally:
            _current.reset(token)

    return functools.wraps(fn)(run)


def _envelope(result: Any, delivery: Delivery) -> dict[str, Any]:
    return {"result": result, "publish": [list(m) for m in delivery.published]}


def unwrap(
    text: str, key: str | None, publish_to: str | None
) -> tuple[str, tuple[tuple[str, str | None, str], ...]]:
    """A subscriber's stored result (JSON text) and the messages to publish with its ack
    (topic, key, value JSON text), from the envelope its run returned: those it published,
    then its result to `publish_to` (with the message's `key`) unless it is None."""
    envelope = orjson.loads(text)
    result = envelope["result"]
    messages = [(t, k, orjson.dumps(v).decode()) for t, k, v in envelope["publish"]]
    if publish_to is not None and result is not None:
        messages.append((publish_to, key, orjson.dumps(result).decode()))
    return orjson.dumps(result).decode(), tuple(messages)
