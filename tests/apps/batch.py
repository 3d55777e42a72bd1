"""Batch tasks for the aggregation tests with real worker processes. The database URL
comes from $OFFLOAD_URL; each call appends one JSON line to $BATCH_LOG (the worker's pid,
the task, and each item's id, group and attempt), so a test can read what every call held."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

import offload

app = offload.App(os.environ.get("OFFLOAD_URL"))


def log_call(task: str, items: list[offload.BatchItem]) -> None:
    """Append one line for this call to $BATCH_LOG (one write: lines never interleave)."""
    line = {
        "pid": os.getpid(),
        "task": task,
        "items": [[item.id, item.args[0], item.attempt] for item in items],
    }
    with open(os.environ["BATCH_LOG"], "ab") as log:
        log.write(orjson.dumps(line) + b"\n")


def by_group(group: str, n: int) -> str:
    """The group of a job: its first argument."""
    return group


@app.batch_task(name="collect", max_size=10, max_wait=0.5, group_by=by_group)
def collect(items: list[offload.BatchItem]) -> list[Any]:
    """Doubles each item's number; a number divisible by 97 fails on its first attempt."""
    log_call("collect", items)
    return [
        offload.ItemFailed(f"{item.args[1]} fails once")
        if item.args[1] % 97 == 0 and item.attempt == 1
        else item.args[1] * 2
        for item in items
    ]


@app.batch_task(name="stall", max_size=20, max_wait=0.2, group_by=by_group)
def stall(items: list[offload.BatchItem]) -> list[Any]:
    """A first attempt hangs (the test kills its worker meanwhile); later ones return."""
    log_call("stall", items)
    if any(item.attempt == 1 for item in items):
        time.sleep(120)
    return [item.args[1] for item in items]


@app.batch_task(name="lonely", max_size=100, max_wait=1.0, group_by=by_group)
def lonely(items: list[offload.BatchItem]) -> list[Any]:
    """A group that never fills: it goes after max_wait."""
    log_call("lonely", items)
    return [item.id for item in items]
