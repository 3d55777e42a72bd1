"""JSON containment as PostgreSQL's jsonb `@>` defines it, for the `args_contains` filter
(no I/O): SQLite runs this function in its queries, PostgreSQL its own operator, and the
conformance tests hold the two to the same answers.

`contains(doc, pattern)`: objects contain an object when every key of the pattern is there
with a value containing the pattern's (recursively); arrays contain an array when every
element of the pattern is contained in some element (order and repeats ignored), and a
top-level array contains a scalar equal to one of its elements; scalars contain only an
equal scalar (numbers by value, 5 and 5.0 alike; never a string "5"; true is not 1).
"""

from __future__ import annotations

from typing import Any

import orjson

#: A JSON text escape PostgreSQL's jsonb refuses; a document holding it matches nothing,
#: on both backends (PostgreSQL could not even read it as jsonb).
NUL_ESCAPE = "\\u0000"


def contains(doc: Any, pattern: Any, *, top: bool = True) -> bool:
    """Whether the parsed JSON `doc` contains `pattern` (the rules of the module docstring)."""
    if isinstance(pattern, dict):
        return isinstance(doc, dict) and all(
            key in doc and contains(doc[key], value, top=False) for key, value in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(doc, list) and all(
            any(contains(element, wanted, top=False) for element in doc) for wanted in pattern
        )
    if isinstance(doc, list):
        return top and any(_same_scalar(element, pattern) for element in doc)
    return _same_scalar(doc, pattern)


def _same_scalar(a: Any, b: Any) -> bool:
    """JSON scalar equality: booleans only equal booleans (Python's True == 1 is not JSON's)."""
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def args_match(args: str, kwargs: str, pattern: str) -> bool:
    """The `args_contains` filter on a job's stored JSON texts: `pattern` (JSON text) is
    contained in one positional argument, or, being an object, in the keyword arguments.
    (PostgreSQL: `args @> jsonb_build_array(pattern) OR kwargs @> pattern`.)"""
    if NUL_ESCAPE in args or NUL_ESCAPE in kwargs:
        return False
    wanted = orjson.loads(pattern)
    if contains(orjson.loads(args), [wanted]):
        return True
    return isinstance(wanted, dict) and contains(orjson.loads(kwargs), wanted)


__all__ = ["args_match", "contains"]
