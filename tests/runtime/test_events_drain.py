"""Events read by cursor while a real worker process drains jobs: every job's enqueued,
started and succeeded reach the reader exactly once, in each job's order."""

from __future__ import annotations

import select
import time
from collections import Counter, defaultdict

import offload
from offload.core.events import Event, EventCursor
from tests.runtime.conftest import StartWorker

JOBS = 300


def test_a_polling_reader_gets_every_change_of_a_draining_worker_once(
    basic_app: offload.App, start_worker: StartWorker, migrated_db_url: str
) -> None:
    reader = offload.App(migrated_db_url)  # another connection, as another process would
    signal = reader.event_signal()
    seen: list[Event] = []
    cursor = EventCursor.START

    def poll() -> None:
        nonlocal cursor
        while page := reader.events(after=cursor, limit=37):  # pages cut across commits
            seen.extend(page)
            cursor = page[-1].cursor

    try:
        start_worker(concurrency=4, executor="thread")
        for start in range(0, JOBS, 50):  # enqueued while the worker drains
            basic_app.enqueue_many("add", [offload.call(i, 1) for i in range(start, start + 50)])
            poll()
        deadline = time.monotonic() + 60
        while sum(e.kind == "succeeded" for e in seen) < JOBS:
            assert time.monotonic() < deadline, f"{len(seen)} events after 60 s"
            if select.select([signal], [], [], 1.0)[0]:
                signal.drain()
            poll()
    finally:
        signal.close()
        reader.close()

    repeated = [c for c, n in Counter(e.cursor for e in seen).items() if n > 1]
    assert repeated == [], f"events read twice: {[str(c) for c in repeated[:10]]}"
    assert [e.cursor for e in seen] == sorted(e.cursor for e in seen)
    by_job: dict[int | None, list[str]] = defaultdict(list)
    for event in seen:
        by_job[event.job_id].append(event.kind)
    assert len(by_job) == JOBS
    assert all(kinds == ["enqueued", "started", "succeeded"] for kinds in by_job.values())
