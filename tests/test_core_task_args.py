"""TaskDef.check_args: a call's arguments checked against the function's signature, read once."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from offload.core.errors import ArgumentsMismatch, ValidationError
from offload.core.options import TaskOptions
from offload.core.task import TaskDef


def _one(user_id: int) -> None: ...


def _defaults(a: int, b: int = 2, /, c: int = 3) -> None: ...


def _star(a: int, *rest: int) -> None: ...


def _keyword_only(a: int, *, flag: bool) -> None: ...


def _keyword_default(a: int, *, flag: bool = False, **extra: Any) -> None: ...


async def _coroutine(a: int, b: int) -> None: ...


FUNCTIONS: list[Callable[..., Any]] = [
    _one,
    _defaults,
    _star,
    _keyword_only,
    _keyword_default,
    _coroutine,
]
CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((1,), {}),
    ((1, 2), {}),
    ((1, 2, 3), {}),
    ((1, 2, 3, 4, 5), {}),
    ((), {"user_id": 1}),
    ((1,), {"flag": True}),
    ((1,), {"c": 1}),
    ((1,), {"b": 1}),
    ((1,), {"a": 1}),
    ((1,), {"other": 1}),
]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda fn: fn.__name__)
def test_a_call_is_refused_exactly_when_the_function_could_not_take_it(
    fn: Callable[..., Any],
) -> None:
    """The counting shortcut and Signature.bind agree on every call."""
    definition = TaskDef("t", fn, TaskOptions())
    for args, kwargs in CALLS:
        try:
            inspect.signature(fn).bind(*args, **kwargs)
            fits = True
        except TypeError:
            fits = False
        if fits:
            definition.check_args(args, kwargs)
            assert definition.mismatch(args, kwargs) is None
        else:
            with pytest.raises(ArgumentsMismatch):
                definition.check_args(args, kwargs)


def test_the_error_names_the_task_the_reason_and_the_signature() -> None:
    definition = TaskDef("send_welcome", _one, TaskOptions())
    with pytest.raises(ArgumentsMismatch) as info:
        definition.check_args((1, 2, 3), {})
    error = info.value
    assert isinstance(error, ValidationError)
    assert (error.task, error.index) == ("send_welcome", None)
    assert error.reason == "too many positional arguments; it takes (user_id)"
    assert str(error) == (
        "arguments do not match task 'send_welcome': too many positional arguments; "
        "it takes (user_id)"
    )
    with pytest.raises(ArgumentsMismatch) as info:
        definition.check_args((), {"user": 1}, index=7)
    assert info.value.index == 7
    assert str(info.value).startswith("call 7: arguments do not match task 'send_welcome': ")
    assert "missing a required argument: 'user_id'" in info.value.reason


def test_a_callable_without_a_readable_signature_is_not_checked() -> None:
    definition = TaskDef("builtin", max, TaskOptions())  # no signature Python can read
    assert definition.signature is None
    definition.check_args((1, 2, 3, 4), {"x": 1})
    assert definition.mismatch((1, 2, 3, 4), {"x": 1}) is None
