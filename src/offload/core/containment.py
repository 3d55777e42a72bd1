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

import functools
from typing import Any

import orjson

#: A JSON text escape PostgreSQL's jsonb refuses; a document holding it matches nothing,
#: on both backends (PostgreSQL could not even read it as jsonb).
NUL_ESCAPE = "\\u0000"


#: Why a JSON null is refused as a whole pattern: None is how the Python API says "no
#: filter", so a null read from a form or a request would silently widen a selection.
NULL_PATTERN = (
    'args_contains cannot be null (that would mean "no filter"): to find a null argument '
    'give [null], or {"name": null} for a keyword argument'
)


def parse_pattern(text: str) -> Any:
    """An `args_contains` pattern from JSON text (a form field, a query parameter); raises
    ValueError naming what is wrong, for text that is not JSON or is a bare null."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError(
            'not JSON: give a JSON value the arguments contain, e.g. {"user": 42} or "ada"'
        ) from None
    if value is None:
        raise ValueError(NULL_PATTERN)
    return value


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
    (PostgreSQL: `args @> jsonb_build_array(pattern) OR kwargs @> pattern`.)

    The queries test `needle` on the texts before calling it, so it parses only jobs
    that may match."""
    wanted = _pattern(pattern)
    if NUL_ESCAPE in args or NUL_ESCAPE in kwargs:
        return False
    if contains(orjson.loads(args), [wanted]):
        return True
    return isinstance(wanted, dict) and contains(orjson.loads(kwargs), wanted)


@functools.lru_cache(maxsize=64)
def _pattern(text: str) -> Any:
    """A pattern parsed once per scan, not once per row."""
    return orjson.loads(text)


def needle(value: Any) -> str | None:
    """A text that the args or kwargs text of every job containing `value` holds, as
    offload's serializer writes JSON (orjson: minimal escapes, shortest float forms), or
    None: the longest of its scalars, written so (a string in quotes, a whole number's
    digits, as 5 is in "5" and "5.0", true, false, null), or of its keys if it has no
    scalar (keys repeat over jobs). A scan tests it first (a substring search, about a
    twentieth of parsing the texts), and parses only the jobs that hold it."""
    found: list[str] = []
    keys: list[str] = []  # only where there is no value: keys repeat over jobs

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            for key, inner in item.items():
                keys.append(orjson.dumps(key).decode())
                walk(inner)
        elif isinstance(item, list):
            for inner in item:
                walk(inner)
        elif isinstance(item, float) and not item.is_integer():
            found.append(orjson.dumps(item).decode())
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            if abs(item) < 2**53:  # larger ones may be written with an exponent
                found.append(str(int(item)))
        else:
            found.append(orjson.dumps(item).decode())

    walk(value)
    return max(found or keys, key=len, default=None)


__all__ = ["args_match", "contains", "needle"]
