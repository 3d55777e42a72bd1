"""Running a batch task: the jobs of one group claim travel to an executor as one call, and
its end comes back as one outcome per job.

The worker turns the claimed jobs into one stand-in job (`gather`) whose only argument lists
the items; an executor runs it like any job, calling the task's runner (`batch_runner`),
which calls the function with `BatchItem`s and encodes each item's result or error. The
worker then splits the call's end into each job's own (`split`): results, per-item
failures, or the call's error for every item. The stand-in's id is the negative of its
first job's, so it never names a stored job (a cancel of one item does not stop the call).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import orjson

from offload.core import serialization
from offload.core.batch import BatchItem, ItemFailed
from offload.core.errors import BatchResultMismatch, ValidationError
from offload.core.job import Job
from offload.runtime.executor import Finished
from offload.runtime.running import error_entry

#: One item as the stand-in job carries it: [id, args, kwargs, attempt].
Wire = list[Any]

#: The error of an item cancelled while its batch call ran: the call's result for it is
#: dropped.
CANCELLED_IN_BATCH = {
    "type": "JobCancelled",
    "message": "cancelled while its batch call ran; its result was dropped",
    "traceback": None,
}


def batch_runner(task: str, fn: Callable[..., Any]) -> Callable[[list[Wire]], Any]:
    """What executors call for a batch task: `fn` with the items, its results encoded
    per item as ["ok", result JSON] or ["error", error entry]. An `async def` function
    gets an `async def` runner, so it runs on the asyncio executor."""
    if inspect.iscoroutinefunction(fn):

        async def run_async(wire: list[Wire]) -> list[list[Any]]:
            items = _items(wire)
            return _settle(task, items, await fn(items))

        return run_async

    def run(wire: list[Wire]) -> list[list[Any]]:
        items = _items(wire)
        return _settle(task, items, fn(items))

    return run


def _items(wire: list[Wire]) -> list[BatchItem]:
    return [BatchItem(i, a, k, n) for i, a, k, n in wire]


def _settle(task: str, items: list[BatchItem], results: Any) -> list[list[Any]]:
    """Each item's encoded end; a result list that does not match the items raises
    BatchResultMismatch (then every item fails with it)."""
    if not isinstance(results, list | tuple):
        raise BatchResultMismatch(task, len(items), f"a {type(results).__name__}, not a list of")
    if len(results) != len(items):
        raise BatchResultMismatch(task, len(items), len(results))
    out: list[list[Any]] = []
    for item, result in zip(items, results, strict=True):
        if isinstance(result, ItemFailed):
            out.append(["error", _failure(result.error)])
            continue
        try:
            out.append(["ok", serialization.dumps(result, f"the result of item {item.id}")])
        except ValidationError as exc:
            out.append(["error", error_entry(exc, with_traceback=False)])
    return out


def _failure(error: BaseException | str) -> dict[str, Any]:
    """The error entry of an item the function failed: an exception as it is, a message
    as an ItemFailed error carrying it."""
    if isinstance(error, BaseException):
        return error_entry(error)
    return {"type": "offload.ItemFailed", "message": str(error), "traceback": None}


def gather(jobs: Sequence[Job]) -> Job:
    """The stand-in job that runs `jobs` (claimed together, of one group) as one call."""
    first = jobs[0]
    wire = [[job.id, job.args, job.kwargs, job.attempt] for job in jobs]
    return replace(first, id=-first.id, args=[wire], kwargs={})


def split(call: Finished, jobs: Sequence[Job], cancelled: set[int]) -> list[Finished]:
    """Each job's end from the end of the call that ran them; jobs in `cancelled` (their
    cancel was asked for while it ran) end cancelled."""
    out: list[Finished] = []
    entries: list[Any] = []
    if call.ok and call.result is not None:
        entries = orjson.loads(call.result)
    for index, job in enumerate(jobs):
        if job.id in cancelled:
            out.append(Finished(job, ok=False, error=CANCELLED_IN_BATCH, cancelled=True))
        elif not call.ok:
            out.append(replace(call, job=job))
        elif entries[index][0] == "ok":
            out.append(Finished(job, ok=True, result=entries[index][1], duration=call.duration))
        else:
            out.append(Finished(job, ok=False, error=entries[index][1], duration=call.duration))
    return out
