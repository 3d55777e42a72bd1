"""`offload.core.containment`: PostgreSQL's jsonb containment rules, in Python (SQLite's
`args_contains`); the conformance tests hold both backends to the same answers."""

from __future__ import annotations

from typing import Any

import pytest

from offload.core.containment import args_match, contains, needle


@pytest.mark.parametrize(
    ("doc", "pattern", "expected"),
    [
        ({"a": 1, "b": 2}, {"a": 1}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": {"b": [1, 2, 3]}}, {"a": {"b": [3, 1]}}, True),
        ({"a": [1, 2]}, {"a": 1}, False),  # a nested array holds no bare scalar
        ([1, 2], 1, True),  # ... but a top-level one does
        ([[1, 2]], [1], False),
        ([[1, 2]], [[2]], True),
        ([1, 2], [], True),
        ({}, {}, True),
        (5, 5.0, True),
        (5, "5", False),
        (True, 1, False),
        (1, True, False),
        (None, None, True),
        ("x", ["x"], False),
    ],
)
def test_contains_follows_jsonb(doc: Any, pattern: Any, expected: bool) -> None:
    assert contains(doc, pattern) is expected


def test_args_match_takes_positional_arguments_or_keyword_objects() -> None:
    assert args_match("[5]", "{}", "5")
    assert args_match("[]", '{"u": 5}', '{"u": 5}')
    assert not args_match("[]", '{"u": 5}', "5")  # a scalar is never looked for in kwargs
    assert args_match('[{"u": 5, "v": 1}]', "{}", '{"u": 5}')
    assert not args_match('["\\u0000"]', '{"u": 5}', '{"u": 5}')  # as PostgreSQL can't read it


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"user": 4242}, "4242"),
        (5.0, "5"),  # in "5" and in "5.0"
        (-1, "-1"),
        (2.5, "2.5"),
        ({"name": "Zoë", "n": 1}, '"Zoë"'),
        ({"flag": True}, "true"),
        ({"x": None}, "null"),
        ({"a": {}}, '"a"'),  # no scalar: the key
        ({}, None),
        ([], None),
        (2**60, None),  # may be written with an exponent
    ],
)
def test_needle_is_held_by_every_matching_text(pattern: Any, expected: str | None) -> None:
    assert needle(pattern) == expected
