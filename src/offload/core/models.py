"""Task parameters annotated with a pydantic model (`offload[pydantic]`): validated and
dumped to JSON at enqueue, rebuilt from it before the task runs.

Pydantic is never imported here: a function annotated with a model has imported it already,
so a model is recognised through `sys.modules`. A job stores the model's JSON form
(`model_dump(mode="json")`), so what crosses the queue stays plain JSON.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Any

from offload.core.errors import ValidationError

#: Validation errors shown in a message at most; the rest are counted.
_SHOWN = 5


@dataclass(frozen=True, slots=True)
class ModelParam:
    """A parameter whose annotation is a pydantic model (or that model or None)."""

    name: str
    #: Its index among the positional arguments, when it can be passed by position.
    position: int | None
    model: Any
    optional: bool


def model_params(
    fn: Callable[..., Any], signature: inspect.Signature | None
) -> tuple[ModelParam, ...]:
    """The parameters of `fn` annotated with a pydantic model; none without pydantic."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or signature is None:
        return ()
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # a forward reference that does not resolve: no models then
        return ()
    found: list[ModelParam] = []
    for index, param in enumerate(signature.parameters.values()):
        hint = hints.get(param.name)
        model, optional = _model_of(hint, pydantic.BaseModel)
        if model is None or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
        found.append(ModelParam(param.name, index if positional else None, model, optional))
    return tuple(found)


def _model_of(hint: Any, base: type) -> tuple[Any, bool]:
    """(model, optional) for `Model` or `Model | None`; (None, False) otherwise."""
    if isinstance(hint, type) and issubclass(hint, base):
        return hint, False
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        members = [m for m in typing.get_args(hint) if m is not NoneType]
        if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], base):
            return members[0], True
    return None, False


def dump_models(
    task: str,
    params: tuple[ModelParam, ...],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    skip: int = 0,
) -> tuple[list[Any], dict[str, Any]]:
    """The arguments with each model argument validated and in its JSON form; a value
    that is not valid raises ValidationError naming the task, the parameter and why.
    `args` start at parameter `skip` (a workflow node's first parameters take its
    parents' results, given only when it runs)."""
    given, named = list(args), dict(kwargs)
    for param in params:
        if param.position is not None and param.position < skip:
            continue  # filled at run time
        if param.position is not None and param.position - skip < len(given):
            at = param.position - skip
            given[at] = _dump(task, param, given[at])
        elif param.name in named:
            named[param.name] = _dump(task, param, named[param.name])
    return given, named


def _dump(task: str, param: ModelParam, value: Any) -> Any:
    if value is None and param.optional:
        return None
    model = param.model
    if not isinstance(value, model):
        pydantic = sys.modules["pydantic"]
        try:
            value = model.model_validate(value)
        except pydantic.ValidationError as exc:
            raise ValidationError(
                f"task {task!r}: argument {param.name!r} is not a valid {model.__name__}: "
                f"{_reasons(exc.errors())}; nothing was stored"
            ) from None
    return value.model_dump(mode="json", by_alias=True)  # as model_validate reads it back


def _reasons(errors: list[dict[str, Any]]) -> str:
    shown = [
        f"{'.'.join(str(part) for part in e.get('loc', ())) or '(value)'}: {e.get('msg')}"
        for e in errors[:_SHOWN]
    ]
    more = f" (and {len(errors) - _SHOWN} more)" if len(errors) > _SHOWN else ""
    return "; ".join(shown) + more


def load_models(
    params: tuple[ModelParam, ...], args: Sequence[Any], kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """The stored arguments with each model argument rebuilt from its JSON form."""
    given, named = list(args), dict(kwargs)
    for param in params:
        if param.position is not None and param.position < len(given):
            given[param.position] = _load(param, given[param.position])
        elif param.name in named:
            named[param.name] = _load(param, named[param.name])
    return given, named


def _load(param: ModelParam, value: Any) -> Any:
    if value is None and param.optional:
        return None
    return param.model.model_validate(value)
