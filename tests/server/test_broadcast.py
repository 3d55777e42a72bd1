"""Event streams that must not stall for good, in process: the broadcaster outlives any
failure of a read, and a finished job's stream is over even with no terminal event."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import offload
from offload.server.broadcast import Broadcaster, EventFilter
from tests.conformance.helpers import RawDB
from tests.server.conftest import Api


def test_the_broadcaster_reads_on_after_an_unexpected_failure(
    app: offload.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_events = app.events
    failures: list[str] = []

    def events_failing_once(**kwargs: Any) -> list[offload.Event]:
        if not failures:
            failures.append("raised")
            raise RuntimeError("an unexpected failure of a read")
        return real_events(**kwargs)

    async def follow() -> list[Any]:
        broadcaster = Broadcaster(app, capacity=100)
        try:
            subscription = await broadcaster.subscribe(EventFilter(channel="c"))
            monkeypatch.setattr(app, "events", events_failing_once)
            app.notify("c", {"n": 1})
            batches = await asyncio.wait_for(subscription.take(), 30)
            return [frame.data for batch in batches for frame in batch.frames]
        finally:
            await broadcaster.stop()

    wires = asyncio.run(follow())
    assert failures == ["raised"]  # the first read failed, and the next delivered
    assert len(wires) == 1 and b'"data":{"n":1}' in wires[0]


def test_a_job_finished_without_events_has_an_ended_stream(
    api: Api, tasks_app: offload.App, db_url: str
) -> None:
    # A job finished before events were kept (schema 9) has none: its stream is over (204)
    # rather than open for ever; a job not finished still streams.
    done = tasks_app.enqueue("add", [1, 2])
    assert tasks_app.worker(executor="thread", burst=True, concurrency=1).run() == 0
    RawDB(db_url).execute("DELETE FROM offload_events")
    assert done.job().state is offload.JobState.SUCCEEDED
    assert api.call("GET", "/v1/jobs/{job_id}/events", job_id=done.id).status_code == 204
