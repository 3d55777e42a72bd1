"""Running one job's function and turning what happened into a plain outcome.

Shared by every executor, so a task behaves the same in a thread or a child process.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from dataclasses import dataclass
from typing import Any

from offload.core import serialization
from offload.core.errors import UnknownTask
from offload.core.job import Job
from offload.core.task import Registry

_MESSAGE_LIMIT = 10_000
_TRACEBACK_LIMIT = 30_000


@dataclass(slots=True)
class Finished:
    """How one run ended, before the worker decides on retry or dead."""

    job: Job
    ok: bool
    #: JSON text of the result when ok.
    result: str | None = None
    #: {"type", "message", "traceback"} when not ok.
    error: dict[str, Any] | None = None
    #: True when retrying cannot help (unknown task): the job goes dead at once.
    permanent: bool = False


def error_entry(exc: BaseException, *, with_traceback: bool = True) -> dict[str, Any]:
    """A JSON-ready description of an exception, size-capped."""
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    tb = "".join(traceback.format_exception(exc)) if with_traceback else None
    return {
        "type": name,
        "message": str(exc)[:_MESSAGE_LIMIT],
        "traceback": tb[-_TRACEBACK_LIMIT:] if tb else None,
    }


def run_call(
    registry: Registry, task: str, args: list[Any], kwargs: dict[str, Any], result_limit: int | None
) -> tuple[bool, str | dict[str, Any], bool]:
    """Run a task by name: (ok, result JSON text or error entry, permanent failure)."""
    try:
        definition = registry.get(task)
    except UnknownTask as exc:
        return False, error_entry(exc, with_traceback=False), True
    try:
        value = definition.fn(*args, **kwargs)
        if inspect.isawaitable(value):
            value = asyncio.run(_await(value))
        return True, serialization.dumps(value, "the task's result", result_limit), False
    except Exception as exc:
        return False, error_entry(exc), False


async def _await(awaitable: Any) -> Any:
    return await awaitable
