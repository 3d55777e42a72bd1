"""Tasks of the dashboard's browser tests; the database URL comes from $OFFLOAD_URL."""

from __future__ import annotations

import os
import time
from typing import Any

import offload

app = offload.App(os.environ.get("OFFLOAD_URL"))
QUEUE = "dash"


@app.task(name="dash.ok", queue=QUEUE)
def ok(user: int, tags: list[str] | None = None) -> dict[str, Any]:
    return {"user": user, "tags": tags}


@app.task(name="dash.flaky", queue=QUEUE, retry=offload.RetryPolicy(max_attempts=1))
def flaky(order: str) -> str:
    """Dies on its first attempt; an explicit retry then succeeds."""
    if offload.current_job().attempt == 1:
        raise ConnectionError(f"payment service down for {order}")
    return f"paid {order}"


@app.task(name="dash.slow", queue=QUEUE)
def slow(*parents: Any, seconds: float = 0.5) -> float:
    time.sleep(seconds)
    return seconds


@app.task(name="dash.parked", queue="parked")
def parked(batch: int) -> int:
    """Enqueued into a queue no test worker serves: stays available until cancelled."""
    return batch


@app.periodic("0 3 * * *", name="nightly-report")
@app.task(name="dash.nightly", queue=QUEUE)
def nightly() -> str:
    return "report"
