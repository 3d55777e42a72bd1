"""JSON encoding of job arguments and results: strict, lossless, never pickle.

Only plain JSON values are accepted: dict with str keys, list (tuples are sent as lists),
str, int within 64 bits, finite float, bool and None. Anything else is refused with a
`SerializationError` naming where in the value it sits, so that a worker always receives a
value equal to the one enqueued.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from offload.core.errors import PayloadTooLarge, SerializationError, clip, shorten

#: Default cap on one job's encoded arguments, and on one result.
DEFAULT_PAYLOAD_LIMIT = 1024 * 1024

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_SCALARS = (bool, type(None))
_MAX_DEPTH = 200


def _check(value: Any, path: str, depth: int) -> None:
    """Raise SerializationError unless `value` is plain JSON; `path` names it for the error."""
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is str:
        _check_text(value, path)
        return
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise SerializationError(
                f"{clip(path)} is an integer outside the 64-bit range JSON carries"
            )
        return
    if kind is float:
        if not math.isfinite(value):
            raise SerializationError(f"{clip(path)} is {value!r}, which JSON cannot represent")
        return
    if depth >= _MAX_DEPTH:
        raise SerializationError(f"{clip(path)} is nested deeper than {_MAX_DEPTH} levels")
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise SerializationError(
                    f"{clip(path)} has a key {shorten(key)} of type {type(key).__name__}; "
                    "JSON keys are str"
                )
            _check_text(key, f"{path} has a key that")
            _check(item, f"{path}[{key!r}]", depth + 1)
        return
    if kind is list or kind is tuple:
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth + 1)
        return
    raise SerializationError(
        f"{clip(path)} is a {kind.__module__}.{kind.__qualname__}, which is not JSON "
        "(allowed: dict with str keys, list, str, int, float, bool, None)"
    )


def _check_text(value: str, path: str) -> None:
    """Refuse text that is not valid Unicode (a lone surrogate cannot be encoded as UTF-8)."""
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SerializationError(
            f"{clip(path)} contains a lone surrogate {value[exc.start]!r} at index {exc.start}, "
            "which is not valid Unicode text"
        ) from None


def dumps(value: Any, what: str = "value", limit: int | None = DEFAULT_PAYLOAD_LIMIT) -> str:
    """Encode a plain JSON value to text, refusing anything that would not round-trip."""
    _check(value, what, 0)
    try:
        data = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:  # e.g. lone surrogates in a str
        raise SerializationError(f"{what} cannot be encoded as JSON: {exc}") from None
    if limit is not None and len(data) > limit:
        raise PayloadTooLarge(what, len(data), limit)
    return data.decode()


def loads(text: str | bytes) -> Any:
    """Decode JSON text stored by `dumps`; anything else raises SerializationError."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SerializationError(f"stored payload is not valid JSON: {exc}") from None


def dumps_args(
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    limit: int | None = DEFAULT_PAYLOAD_LIMIT,
) -> tuple[str, str]:
    """Encode positional and keyword arguments, naming the offending argument on error."""
    for index, arg in enumerate(args):
        kind = type(arg)  # the common plain cases inline: this runs once per job enqueued
        if (kind is int and _INT_MIN <= arg <= _INT_MAX) or (kind is str and arg.isascii()):
            continue
        if kind not in _SCALARS:
            _check(arg, f"argument {index}", 1)
    if kwargs:  # most calls have none: no call to look
        for name, arg in kwargs.items():
            _check(arg, f"argument {name!r}", 1)
    try:
        # orjson takes a tuple or list as it is; a subclass (a namedtuple) goes as a list.
        plain = args if type(args) is tuple or type(args) is list else list(args)
        args_text = orjson.dumps(plain).decode()
        kwargs_text = orjson.dumps(kwargs).decode() if kwargs else "{}"
    except orjson.JSONEncodeError as exc:
        raise SerializationError(f"arguments cannot be encoded as JSON: {exc}") from None
    size = len(args_text) + len(kwargs_text)
    if limit is not None and size > limit:
        raise PayloadTooLarge("arguments", size, limit)
    return args_text, kwargs_text
