"""Tasks with global limits, for the limit tests with real worker processes; the database
URL comes from $OFFLOAD_URL."""

from __future__ import annotations

import os
import time

import offload

app = offload.App(os.environ.get("OFFLOAD_URL"))


def by_key(key: str, *rest: object) -> str:
    """The limit key: the job's first argument (a customer, a host)."""
    return key


@app.task(name="paced", rate_limit="20/s", limit_key=by_key)
def paced(key: str) -> None:
    """At most 20 starts per second per key."""


@app.task(name="capped", concurrency=2, limit_key=by_key)
def capped(key: str, seconds: float) -> None:
    """At most 2 running at once per key."""
    time.sleep(seconds)


@app.task(name="single", concurrency=1, limit_key=by_key)
def single(key: str, seconds: float) -> None:
    """One running at a time per key."""
    time.sleep(seconds)


@app.task(name="free")
def free() -> None:
    """No limit."""
