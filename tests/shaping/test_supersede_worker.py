"""Supersede with a real worker process: while its only slot is busy, 100 enqueues with one
replace key leave exactly one job to run, the last; the 99 others end cancelled, each
pointing at the job stored after it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import offload
from offload import JobState
from tests.conformance.helpers import RawDB
from tests.runtime.conftest import PYTHONPATH, ROOT

#: Seconds the blocking job holds the worker's only slot.
BUSY = 3.0


def test_only_the_last_of_100_replacing_enqueues_runs(
    app: offload.App, db_url: str, spawned: list[subprocess.Popen[bytes]]
) -> None:
    from tests.apps import basic

    app.registry.add(basic.app.registry.get("sleep"))
    sleep = app.registry.get("sleep")
    blocker = app.enqueue(sleep.name, [BUSY])
    env = dict(os.environ, OFFLOAD_URL=db_url, PYTHONPATH=PYTHONPATH)
    env.update(WORKER_CONCURRENCY="1", WORKER_EXECUTOR="thread", WORKER_PREFETCH="0")
    spawned.append(
        subprocess.Popen([sys.executable, "-m", "tests.apps.run_worker"], cwd=ROOT, env=env)
    )
    deadline = time.monotonic() + 60
    while blocker.status() is not JobState.RUNNING:  # the slot is taken
        assert time.monotonic() < deadline, "the worker never started the blocking job"
        time.sleep(0.02)
    handles = [
        app.enqueue(sleep.name, [0], {"tag": ""}, replace="reindex:user:42") for _ in range(100)
    ]
    assert blocker.status() is JobState.RUNNING, "the enqueues outlasted the busy worker"
    last = handles[-1].wait(timeout=60)
    assert last.state is JobState.SUCCEEDED
    assert blocker.wait(timeout=60).state is JobState.SUCCEEDED
    ids = [h.id for h in handles]
    rows = RawDB(db_url).query(
        "SELECT id, state, superseded_by, started_at FROM offload_jobs"
        " WHERE replace_key IS NOT NULL ORDER BY id"
    )
    assert [r["id"] for r in rows] == ids
    assert [r["state"] for r in rows] == ["cancelled"] * 99 + ["succeeded"]
    assert [r["superseded_by"] for r in rows] == [*ids[1:], None]
    assert [r["started_at"] is None for r in rows] == [True] * 99 + [False]
