"""The app the test hosts run: tasks that write each run into the ledger (tests.hosts.ledger).

Every process reads $OFFLOAD_URL (the jobs' database, maybe through PgBouncer),
$HOSTS_LEDGER (the ledger's database) and $HOSTS_NAME (which host it runs on).
"""

from __future__ import annotations

import os
import time

import offload
from tests.hosts import ledger

app = offload.App(os.environ.get("OFFLOAD_URL"))


def by_key(key: str, *rest: object) -> str:
    """The limit key: the job's first argument (a customer, an API host)."""
    return key


@app.task(name="hosts.work")
def work(seconds: float) -> list[object]:
    """A run recorded as it starts; returns which host and attempt ran it, so a stale
    outcome that overwrote a newer attempt would show in the job's result."""
    job = offload.current_job()
    ledger.started(job.id, job.attempt)
    if seconds:
        time.sleep(seconds)
    return [ledger.HOST, job.attempt]


@app.task(name="hosts.capped", concurrency=2, limit_key=by_key)
def capped(key: str, seconds: float) -> None:
    """At most 2 running at once per key, on all hosts together."""
    job = offload.current_job()
    ledger.started(job.id, job.attempt, key)
    time.sleep(seconds)
    ledger.finished(job.id, job.attempt)


@app.task(name="hosts.paced", rate_limit="10/s", limit_key=by_key)
def paced(key: str) -> None:
    """At most 10 starts per second per key, on all hosts together."""
    job = offload.current_job()
    ledger.started(job.id, job.attempt, key)
