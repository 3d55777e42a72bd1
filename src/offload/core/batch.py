"""Batch tasks as plain values (no I/O): what a batch function is given and may return,
a batch task's options, and the group key each of its jobs is stored with.

A batch task's jobs are enqueued one by one, as any task's; each carries a group key (the
JSON text of `group_by(*args, **kwargs)`, or `null` without `group_by`). A worker takes up
to `max_size` due jobs of one group in one claim and calls the function once with them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from offload.core import serialization
from offload.core.errors import ConfigurationError, ValidationError, shorten

#: The longest group key, in characters of JSON text: a group names a user or an account,
#: not a payload.
MAX_GROUP_KEY = 200
#: The most items one batch call may take: one claim statement lists them all.
MAX_BATCH_SIZE = 10_000
#: The longest `max_wait`, in seconds (a day).
MAX_BATCH_WAIT = 86_400.0
#: The group key of every job of a batch task without `group_by`: one group.
SINGLE_GROUP = "null"


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One job of a batch call: its id, its arguments, and which attempt this run is."""

    id: int
    args: list[Any]
    kwargs: dict[str, Any]
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class ItemFailed:
    """Returned in an item's place: that item alone fails with `error` (an exception, or a
    message that becomes the error's message) and is retried under its own attempts."""

    error: BaseException | str


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """How a batch task's jobs are gathered: up to `max_size` of one group per call, a
    group going once it has `max_size` due jobs or its oldest has been due `max_wait`
    seconds; `group_by(*args, **kwargs)` names a job's group (None: one group)."""

    max_size: int = 100
    max_wait: float = 2.0
    group_by: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        size = self.max_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
            raise ConfigurationError(
                f"max_size must be an int within [1, {MAX_BATCH_SIZE}], got {shorten(size)}"
            )
        wait = self.max_wait
        if (
            isinstance(wait, bool)
            or not isinstance(wait, int | float)
            or not math.isfinite(wait)
            or not 0 <= wait <= MAX_BATCH_WAIT
        ):
            raise ConfigurationError(
                f"max_wait must be seconds within [0, {MAX_BATCH_WAIT:g}], got {shorten(wait)}"
            )
        if self.group_by is not None and not callable(self.group_by):
            raise ConfigurationError(f"group_by must be callable, got {shorten(self.group_by)}")

    def group_key(
        self, task: str, args: Sequence[Any], kwargs: dict[str, Any], index: int | None = None
    ) -> str:
        """The job's group as JSON text (dict keys sorted, so equal values are one group).
        A `group_by` that raises, or returns what JSON cannot carry or a value longer than
        `MAX_GROUP_KEY` as JSON, raises ValidationError naming the task (`index`: the call's
        place in a batch), so the enqueue stores nothing."""
        if self.group_by is None:
            return SINGLE_GROUP
        where = "" if index is None else f" (call {index})"
        try:
            value = self.group_by(*args, **kwargs)
        except Exception as exc:
            raise ValidationError(
                f"task {task!r}: group_by raised {type(exc).__name__}: "
                f"{shorten(str(exc))}{where}; nothing was stored"
            ) from exc
        try:
            serialization.dumps(value, "its value", None)
        except ValidationError as exc:
            raise ValidationError(
                f"task {task!r}: group_by returned {shorten(value)}, which is not a JSON "
                f"value ({exc}){where}; nothing was stored"
            ) from None
        key = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        if len(key) > MAX_GROUP_KEY:
            raise ValidationError(
                f"task {task!r}: group_by returned a value of {len(key)} characters as JSON, "
                f"more than {MAX_GROUP_KEY}{where}; nothing was stored"
            )
        return key
