"""The strict JSON codec: lossless for plain JSON, a SerializationError naming the offending
argument (and where inside it) for anything else, PayloadTooLarge over the limit."""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.core.errors import PayloadTooLarge, SerializationError, ValidationError
from offload.core.serialization import DEFAULT_PAYLOAD_LIMIT, dumps, dumps_args, loads


class Colour(enum.IntEnum):
    RED = 1


def _nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


BAD_VALUES: list[tuple[str, Any, str]] = [
    ("set", {1}, "builtins.set"),
    ("frozenset", frozenset(), "builtins.frozenset"),
    ("bytes", b"x", "builtins.bytes"),
    ("date", date(2024, 1, 1), "datetime.date"),
    ("decimal", Decimal("1.5"), "decimal.Decimal"),
    ("object", object(), "builtins.object"),
    ("int enum", Colour.RED, "Colour"),
    ("ordered dict", OrderedDict(a=1), "OrderedDict"),
    ("nan", math.nan, "nan"),
    ("inf", math.inf, "inf"),
    ("-inf", -math.inf, "-inf"),
    ("big int", 2**64, "64-bit"),
    ("small int", -(2**63) - 1, "64-bit"),
    ("int key", {1: 2}, "key 1 of type int"),
    ("none key", {None: 2}, "key None of type NoneType"),
    ("deep", _nest(300), "nested deeper"),
    ("lone surrogate", "\ud800", "surrogate"),
    ("lone surrogate key", {"\udc00": 1}, "surrogate"),
]


@pytest.mark.parametrize(("kind", "value", "words"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_dumps_args_names_the_positional_argument(kind: str, value: Any, words: str) -> None:
    with pytest.raises(SerializationError) as info:
        dumps_args(("fine", {"list": [0, value]}), {})
    message = str(info.value)
    assert "argument 1" in message, message
    assert words in message, message
    assert isinstance(info.value, ValidationError)


@pytest.mark.parametrize(("kind", "value", "words"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_dumps_args_names_the_keyword_argument(kind: str, value: Any, words: str) -> None:
    with pytest.raises(SerializationError) as info:
        dumps_args((), {"ok": 1, "report": value})
    assert "argument 'report'" in str(info.value), str(info.value)


def test_the_path_inside_the_argument_is_named() -> None:
    with pytest.raises(SerializationError) as info:
        dumps_args((1, {"rows": [0, 1, {"when": {1, 2}}]}), {})
    assert "argument 1['rows'][2]['when']" in str(info.value)


def test_dumps_names_what_it_encodes() -> None:
    with pytest.raises(SerializationError, match="the task's result"):
        dumps({"x": {1}}, "the task's result")
    with pytest.raises(SerializationError, match="the task's result"):
        dumps("\ud800", "the task's result")


def test_tuples_are_sent_as_lists_and_order_is_kept() -> None:
    args, kwargs = dumps_args(((1, 2), [3]), {"b": 1, "a": (None,)})
    assert loads(args) == [[1, 2], [3]]
    assert kwargs == '{"b":1,"a":[null]}'


class Point(NamedTuple):
    x: int
    y: str


def test_the_arguments_may_come_as_any_tuple_or_list() -> None:
    assert dumps_args(Point(1, "a"), {}) == ('[1,"a"]', "{}")
    assert dumps_args([1, 2], {"k": None}) == ("[1,2]", '{"k":null}')


def test_payload_limit() -> None:
    dumps_args(("x" * 100,), {}, limit=106)  # ["xxx..."] and {}: 104 + 2 bytes
    with pytest.raises(PayloadTooLarge) as info:
        dumps_args(("x" * 100,), {}, limit=105)
    assert (info.value.what, info.value.size, info.value.limit) == ("arguments", 106, 105)
    assert "106 bytes" in str(info.value)
    assert "105 bytes" in str(info.value)
    dumps_args(("x" * (DEFAULT_PAYLOAD_LIMIT + 1),), {}, limit=None)
    with pytest.raises(PayloadTooLarge, match="result"):
        dumps("é" * 600_000, "result")  # 1.2 MB encoded: bytes count, not characters


def test_loads_refuses_what_is_not_json() -> None:
    for text in ("", "{", "NaN", "[1,]", b"\xff", "{'a': 1}"):
        with pytest.raises(SerializationError, match="not valid JSON"):
            loads(text)


def test_nesting_limit_counts_levels() -> None:
    dumps_args((_nest(150),), {})
    with pytest.raises(SerializationError, match="nested deeper"):
        dumps_args((_nest(250),), {})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_plain_json_round_trips(value: Any) -> None:
    assert loads(dumps(value)) == value
    args, kwargs = dumps_args((value,), {"v": value})
    assert loads(args) == [value]
    assert loads(kwargs) == {"v": value}
