"""Tasks of the flow-control process tests; the database URL comes from $OFFLOAD_URL.

`fanout`'s sweep hook appends one JSON line per call (the batch's arguments) to
$FLOW_SWEEP_FILE, so that a test can read what the scheduler's sweep handed it.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

import offload

app = offload.App(os.environ.get("OFFLOAD_URL"))


@app.task(name="work")
def work(seconds: float, tag: str = "") -> str:
    time.sleep(seconds)
    return tag


def recompute(batch: list[tuple[list[Any], dict[str, Any]]]) -> None:
    """The sweep hook of `fanout`: record the shed jobs' arguments it was given."""
    with open(os.environ["FLOW_SWEEP_FILE"], "ab") as out:
        out.write(orjson.dumps([args for args, _ in batch]) + b"\n")


@app.task(name="fanout", sweep=recompute)
def fanout(user: int) -> int:
    return user
