"""`Outage`: one line as an outage starts, one once the database has answered for a while,
and a backoff that grows to a few seconds; what counts as waiting out vs stopping."""

from __future__ import annotations

import logging

import pytest

from offload import BackendUnavailable, SchemaMismatch, StorageFull
from offload.runtime.outage import MAX_DELAY, SETTLE, Outage, fatal, passing


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_each_way_even_when_successes_and_failures_alternate(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    monkeypatch.setattr("offload.runtime.outage.time.monotonic", clock)
    state = Outage("worker w", logging.getLogger("test.outage"))
    caplog.set_level(logging.WARNING, "test.outage")
    full = StorageFull("jobs.db: full", "jobs.db")
    delays = []
    for _ in range(6):  # a full disk: a read succeeds, the next write fails
        delays.append(state.failed(full))
        assert state.active
        clock.now += 0.5
        state.recovered()
        assert not state.active  # answering again: claims may go on
        clock.now += 0.5
    assert [r.getMessage() for r in caplog.records] == [
        "worker w: database unavailable, retrying until it is back: jobs.db: full"
    ]
    assert all(d <= MAX_DELAY for d in delays) and delays[-1] > delays[0]
    clock.now += SETTLE
    state.recovered()
    assert caplog.records[-1].getMessage() == "worker w: database back after 5.5s, resuming"
    assert state.since is None


def test_what_is_waited_out() -> None:
    assert passing(BackendUnavailable("down"))
    assert passing(StorageFull("full", "x.db"))
    refused = BackendUnavailable("password authentication failed", transient=False)
    assert not passing(refused) and fatal(refused)
    assert fatal(SchemaMismatch("db", 1, 2)) and not passing(SchemaMismatch("db", 1, 2))
    assert not fatal(BackendUnavailable("down"))
