"""Running one job's function, and turning how it ended into an outcome and then an event.

Shared by every executor, so a task behaves the same in a thread, a child process or on an
event loop.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Awaitable
from typing import Any

from offload.core import serialization
from offload.core.errors import ArgumentsMismatch, JobCancelled, UnknownTask
from offload.core.job import Job
from offload.core.task import Registry, TaskDef
from offload.runtime.context import JobContext, Running
from offload.runtime.executor import Finished

_MESSAGE_LIMIT = 10_000
_TRACEBACK_LIMIT = 30_000


def error_entry(exc: BaseException, *, with_traceback: bool = True) -> dict[str, Any]:
    """A JSON-ready description of an exception, size-capped."""
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    tb = "".join(traceback.format_exception(exc)) if with_traceback else None
    return {
        "type": name,
        "message": str(exc)[:_MESSAGE_LIMIT],
        "traceback": tb[-_TRACEBACK_LIMIT:] if tb else None,
    }


def limit_error(kind: str, message: str) -> dict[str, Any]:
    """The error entry of a run stopped by a limit or a crash (no traceback to show)."""
    return {"type": kind, "message": message, "traceback": None}


#: What `run_call` returns: (ok, result JSON text or error entry, permanent, cancelled).
Outcome = tuple[bool, str | dict[str, Any], bool, bool]


def lookup(registry: Registry, task: str) -> TaskDef | dict[str, Any]:
    """The task's definition, or the error entry of an unknown task."""
    try:
        return registry.get(task)
    except UnknownTask as exc:
        return error_entry(exc, with_traceback=False)


def run_call(
    definition: TaskDef | dict[str, Any],
    args: list[Any],
    kwargs: dict[str, Any],
    ctx: JobContext,
    result_limit: int | None,
) -> Outcome:
    """Run a sync task (an `async def` one on a private loop) as job `ctx`."""
    if isinstance(definition, dict):
        return False, definition, True, False
    try:
        with Running(ctx):
            value = definition.target(*args, **kwargs)
            if value is not None and inspect.isawaitable(value):
                import asyncio  # only here: a plain worker process never loads asyncio

                value = asyncio.run(_await(value))
        return True, serialization.dumps(value, "the task's result", result_limit), False, False
    except JobCancelled as exc:
        return False, error_entry(exc, with_traceback=False), False, True
    except MemoryError as exc:
        limit = definition.options.memory_mb
        if limit is None:
            return False, error_entry(exc), False, False
        return (
            False,
            limit_error("MemoryLimitExceeded", f"exceeded memory_mb={limit:g}"),
            False,
            False,
        )
    except Exception as exc:
        return failure(definition, args, kwargs, exc)


def failure(
    definition: TaskDef, args: list[Any], kwargs: dict[str, Any], exc: Exception
) -> Outcome:
    """The outcome of a run that raised `exc`. A TypeError whose arguments the function
    cannot take came from the call itself, not from the task's body: that job can never
    run, so it ends at once (as one of an unknown task does); anything else may be retried.
    Checked only on a TypeError, so a run that succeeds pays nothing for it."""
    if isinstance(exc, TypeError):
        reason = definition.mismatch(args, kwargs)
        if reason is not None:
            mismatch = ArgumentsMismatch(definition.name, reason)
            return False, error_entry(mismatch, with_traceback=False), True, False
    return False, error_entry(exc), False, False


def finished_from(job: Job, outcome: Outcome, duration: float | None = None) -> Finished:
    """The event of a run that ended with `outcome` after `duration` seconds."""
    ok, payload, permanent, cancelled = outcome
    if ok:
        assert isinstance(payload, str)
        return Finished(job, ok=True, result=payload, duration=duration)
    assert isinstance(payload, dict)
    return Finished(
        job,
        ok=False,
        error=payload,
        permanent=permanent,
        cancelled=cancelled,
        duration=duration,
    )


def stopped(job: Job, kind: str, message: str, cancelled: bool = False) -> Finished:
    """The event of a run stopped from outside: by a limit, a cancel or a crash."""
    return Finished(job, ok=False, error=limit_error(kind, message), cancelled=cancelled)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
