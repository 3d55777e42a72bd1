"""Job events on both backends: one per state change, written in the change's transaction,
read by cursor without skips or repeats, filtered by job, queue and channel; applications'
own events (notify); the wake-up signal; retention; bad input refused, nothing stored."""

from __future__ import annotations

import select
import time
from typing import Any

import psycopg
import pytest

import offload
from offload.backends.base import Backend
from offload.backends.params import (
    FinishParams,
    JobFilter,
    JobRetryManyParams,
    Outcome,
    ProgressReport,
    ReleaseParams,
    RescueParams,
    SweepReadmitParams,
    SweepTakeParams,
)
from offload.backends.sql import events as events_module
from offload.core.errors import BadEventId, ValidationError
from offload.core.events import Event, EventCursor
from offload.core.flow import QueuePolicy
from offload.core.states import JobState
from tests.conformance.helpers import (
    RawDB,
    claim_one,
    error_json,
    expire_lease,
    insert,
    lease_of,
)
from tests.conformance.test_transactional import caller_connection


@pytest.fixture
def echo(app: offload.App) -> offload.Task[..., Any]:
    @app.task(name="echo", max_attempts=2)
    def echo(*args: Any) -> Any:
        return args

    task: offload.Task[..., Any] = echo  # `-> Any` could be async: say which
    return task


def _kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def _finish(backend: Backend, job: offload.Job, state: JobState, error: str | None = None) -> None:
    outcome = Outcome(job.id, job.attempt, state, result="1", error=error, delay=0.0)
    assert backend.claims.finish(FinishParams("w1", [outcome])) == []


def _event_count(db_url: str) -> int:
    return int(RawDB(db_url).scalar("SELECT count(*) FROM offload_events"))


def test_a_job_s_life_is_told_in_order_with_its_fields(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    handle = echo.options(channel="user:42").enqueue(1)
    backend = app.backend
    job = claim_one(backend)
    backend.claims.progress("w1", [ProgressReport(job.id, job.attempt, 0.5, "half")])
    _finish(backend, job, JobState.RETRYING, error_json(message="flaky"))
    job = claim_one(backend)
    _finish(backend, job, JobState.SUCCEEDED)

    events = app.events(job_id=handle.id)
    assert _kinds(events) == ["enqueued", "started", "progress", "retrying", "started", "succeeded"]
    assert [e.state for e in events] == [
        "available", "running", "running", "retrying", "running", "succeeded",
    ]  # fmt: skip
    assert [e.attempt for e in events] == [0, 1, 1, 1, 2, 2]
    assert all(
        (e.job_id, e.task, e.queue, e.channel) == (handle.id, "echo", "default", "user:42")
        for e in events
    )
    assert events[2].data == {"fraction": 0.5, "message": "half"}
    assert events[3].data == {"error": "flaky"}
    assert events[0].data == {} and events[-1].data == {}
    cursors = [e.cursor for e in events]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert events[-1].to_json() == {
        "id": str(events[-1].cursor),
        "kind": "succeeded",
        "at": events[-1].at.isoformat(),
        "job_id": handle.id,
        "task": "echo",
        "queue": "default",
        "channel": "user:42",
        "state": "succeeded",
        "attempt": 2,
        "data": {},
    }
    assert app.backend.jobs.get(handle.id).channel == "user:42"


def test_dead_cancel_retry_release_and_rescue_each_have_their_kind(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    backend = app.backend
    dead = echo.enqueue("dead")
    job = claim_one(backend)
    _finish(backend, job, JobState.DEAD, error_json(message="gave up"))
    app.retry(dead.id)  # dead -> available
    cancelled = echo.enqueue("cancelled")
    app.cancel(cancelled.id)

    assert _kinds(app.events(job_id=dead.id)) == ["enqueued", "started", "dead", "requeued"]
    assert app.events(job_id=dead.id)[2].data == {"error": "gave up"}
    assert _kinds(app.events(job_id=cancelled.id)) == ["enqueued", "cancelled"]

    released = claim_one(backend)  # the retried job
    assert backend.claims.release(ReleaseParams("w1", [lease_of(released)])) == 1
    assert _kinds(app.events(job_id=released.id))[-2:] == ["started", "requeued"]
    assert app.events(job_id=released.id)[-1].state == "available"

    rescued = claim_one(backend, lease=0.3)
    expire_lease(backend, rescued)
    assert backend.claims.rescue(RescueParams()) == [rescued.id]
    last = app.events(job_id=rescued.id)[-1]
    assert (last.kind, last.state, last.attempt) == ("requeued", "available", rescued.attempt)


def test_a_running_job_asked_to_stop_ends_cancelled_and_a_superseded_one_too(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    running = echo.enqueue("running")
    job = claim_one(app.backend)
    app.cancel(running.id)  # a stop request: no state change yet, so no event
    assert _kinds(app.events(job_id=running.id)) == ["enqueued", "started"]
    _finish(app.backend, job, JobState.CANCELLED)
    assert _kinds(app.events(job_id=running.id)) == ["enqueued", "started", "cancelled"]

    old = echo.options(replace="report").enqueue(1)
    new = echo.options(replace="report").enqueue(2)
    assert _kinds(app.events(job_id=old.id)) == ["enqueued", "cancelled"]
    assert _kinds(app.events(job_id=new.id)) == ["enqueued"]


def test_enqueue_many_and_a_transactional_enqueue_write_one_event_per_job(
    app: offload.App, echo: offload.Task[..., Any], db_url: str
) -> None:
    handles = app.enqueue_many("echo", [offload.call(i) for i in range(5)], channel="batch")
    events = app.events(channel="batch")
    assert [e.job_id for e in events] == [h.id for h in handles]
    assert _kinds(events) == ["enqueued"] * 5


def test_filters_combine_and_none_means_every_event(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    a = echo.options(channel="user:1").enqueue("a")
    b = echo.options(channel="user:2", queue="other").enqueue("b")
    c = echo.options(queue="other").enqueue("c")
    app.notify("user:1", {"note": True})

    assert [e.job_id for e in app.events()] == [a.id, b.id, c.id, None]
    assert [e.job_id for e in app.events(queue="other")] == [b.id, c.id]
    assert [e.job_id for e in app.events(channel="user:1")] == [a.id, None]
    assert [e.job_id for e in app.events(channel="user:2", queue="other")] == [b.id]
    assert app.events(channel="user:2", queue="default") == []
    assert [e.job_id for e in app.events(job_id=b.id, queue="other")] == [b.id]
    assert app.events(job_id=b.id, channel="user:1") == []
    assert app.events(job_id=10**12) == []
    assert app.events(channel="nobody") == []


def test_pages_by_cursor_never_skip_or_repeat(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    echo.enqueue_many([offload.call(i) for i in range(7)])
    for i in range(3):
        app.notify("c", i)
    everything = app.events()
    assert len(everything) == 10
    for limit in (1, 3, 4, 10, 11):
        seen: list[Event] = []
        cursor = EventCursor.START
        while page := app.events(after=cursor, limit=limit):
            assert len(page) <= limit
            seen += page
            cursor = page[-1].cursor
        assert seen == everything
    # A cursor in text form (a Last-Event-ID) reads the same as the cursor itself.
    middle = everything[4].cursor
    assert app.events(after=str(middle)) == app.events(after=middle) == everything[5:]
    assert app.events(after=everything[-1].cursor) == []


def test_the_tail_is_the_newest_readable_event(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    assert app.event_tail() == EventCursor.START
    echo.enqueue(1)
    cursor = app.notify("c", "x")
    assert app.event_tail() == cursor == app.events()[-1].cursor
    assert app.events(after=app.event_tail()) == []
    later = echo.enqueue(2)
    assert [e.job_id for e in app.events(after=cursor)] == [later.id]


def test_notify_stores_the_application_s_value_on_its_channel(app: offload.App) -> None:
    values: list[Any] = [{"step": "render", "pages": [1, 2]}, [1, "two"], "text", 3.5, None]
    cursors = [app.notify("user:7", value) for value in values]
    events = app.events(channel="user:7")
    assert [e.cursor for e in events] == cursors
    assert [e.data for e in events] == values
    assert {(e.kind, e.job_id, e.task, e.queue, e.state, e.attempt) for e in events} == {
        ("notify", None, None, None, None, None)
    }


def test_a_signal_becomes_readable_when_another_process_commits_events(
    app: offload.App, echo: offload.Task[..., Any], migrated_db_url: str
) -> None:
    signal = app.event_signal()
    try:
        other = offload.App(migrated_db_url)
        other.notify("c", 1)
        other.close()
        readable, _, _ = select.select([signal], [], [], 10.0)
        assert readable == [signal]
        signal.drain()
        deadline = time.monotonic() + 0.5  # quiet now: nothing more committed
        while time.monotonic() < deadline:
            readable, _, _ = select.select([signal], [], [], 0.1)
            if readable:  # a commit of the notify's own bookkeeping may come late
                signal.drain()
        assert select.select([signal], [], [], 0.2)[0] == []
        echo.enqueue(1)
        assert select.select([signal], [], [], 10.0)[0] == [signal]
    finally:
        signal.close()


def test_pruning_removes_old_events_and_positions_are_never_reused(
    app: offload.App, echo: offload.Task[..., Any], db_url: str
) -> None:
    echo.enqueue(1)
    newest = app.notify("c", "old")
    moment = app.backend.now()
    while app.backend.now() <= moment:
        time.sleep(0.01)
    assert app.backend.events.prune(3600.0) == 0
    assert app.backend.events.prune(0.0) == 2
    assert app.events() == [] and _event_count(db_url) == 0
    after = app.notify("c", "new")
    assert after > newest
    assert [e.data for e in app.events()] == ["new"]


def test_pruning_goes_a_chunk_per_transaction_until_none_is_left(
    app: offload.App, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_module, "PRUNE_CHUNK", 2)
    for i in range(5):
        app.notify("c", i)
    moment = app.backend.now()
    while (app.backend.now() - moment).total_seconds() < 1.0:
        time.sleep(0.05)
    app.notify("c", "kept")
    assert app.backend.events.prune(3600.0) == 0
    assert app.backend.events.prune(0.5) == 5  # chunks of 2, 2 and 1
    assert [e.data for e in app.events()] == ["kept"] and _event_count(db_url) == 1


def test_the_scheduler_prunes_events_with_finished_jobs(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    app.notify("c", "old")
    moment = app.backend.now()
    while app.backend.now() <= moment:
        time.sleep(0.01)
    app.scheduler(retention={"succeeded": 0.0, "cancelled": 0.0}).prune()
    assert len(app.events()) == 1  # dead jobs are kept for ever: so are events
    app.scheduler(retention={"succeeded": 0.0, "cancelled": 0.0, "dead": 3600.0}).prune()
    assert len(app.events()) == 1  # younger than the longest retention
    app.scheduler(retention={"succeeded": 0.0, "cancelled": 0.0, "dead": 0.0}).prune()
    assert app.events() == []


@pytest.mark.parametrize(
    "text",
    ["", "1", "1-", "-1", "a-1", "1-b", "1-2-3", " 1-2", "1-2\n", "01-2", "+1-2", "1-" + "9" * 30],
)
def test_bad_cursor_text_is_named(app: offload.App, text: str) -> None:
    with pytest.raises(BadEventId) as raised:
        app.events(after=text)
    assert raised.value.text == text
    assert repr(text)[:20] in str(raised.value)


@pytest.mark.parametrize("channel", ["", "x" * 256, "bad\udc80", 42, None.__class__], ids=str)
def test_bad_channel_names_are_refused_storing_nothing(
    app: offload.App, echo: offload.Task[..., Any], db_url: str, channel: Any
) -> None:
    with pytest.raises(ValidationError, match="channel"):
        echo.options(channel=channel).enqueue(1)
    with pytest.raises(ValidationError, match="channel"):
        app.enqueue_many("echo", [offload.call(1)], channel=channel)
    with pytest.raises(ValidationError, match="channel"):
        app.notify(channel, {})
    with pytest.raises(ValidationError, match="channel"):
        app.events(channel=channel)
    assert RawDB(db_url).scalar("SELECT count(*) FROM offload_jobs") == 0
    assert _event_count(db_url) == 0


def test_the_longest_channel_name_and_any_unicode_are_kept(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    for channel in ("x" * 255, "usuário:🦊", "a b\tc"):
        handle = echo.options(channel=channel).enqueue(1)
        assert [e.job_id for e in app.events(channel=channel)] == [handle.id]


def test_bad_notify_data_and_read_arguments_are_refused(app: offload.App, db_url: str) -> None:
    with pytest.raises(ValidationError, match="data"):
        app.notify("c", {1, 2})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="data"):
        app.notify("c", "x" * (app.payload_limit + 1))
    for limit in (0, -1, 10_001, True, 1.5):
        with pytest.raises(ValidationError, match="limit"):
            app.events(limit=limit)  # type: ignore[arg-type]
    for job_id in ("1", 1.0, 2**63):
        with pytest.raises(ValidationError, match="job_id"):
            app.events(job_id=job_id)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="after"):
        app.events(after=5)  # type: ignore[arg-type]
    assert _event_count(db_url) == 0


def test_a_rolled_back_transactional_enqueue_leaves_no_event(
    app: offload.App, echo: offload.Task[..., Any], db_url: str
) -> None:
    with caller_connection(db_url) as conn:
        echo.options(conn=conn).enqueue("gone")
        conn.rollback()
        kept = echo.options(conn=conn).enqueue("kept")
        assert app.events() == []  # not committed yet
        conn.commit()
    assert [(e.kind, e.job_id) for e in app.events()] == [("enqueued", kept.id)]


def _poll(app: offload.App, cursor: EventCursor, seen: list[Event]) -> EventCursor:
    """Read everything after `cursor` into `seen`; return the new cursor."""
    while page := app.events(after=cursor, limit=2):
        seen += page
        cursor = page[-1].cursor
    return cursor


@pytest.mark.parametrize("first_id", ["first writer", "second writer"])
def test_postgres_transactions_committing_out_of_order_are_read_once_each(
    pg_url: str, first_id: str
) -> None:
    """T1 writes an event, T2 writes one and commits, a reader reads; T1 commits, the reader
    reads on from its cursor: it gets both, once each, whichever transaction took its id
    (which orders events) first."""
    pg_app = offload.App(pg_url, auto_migrate=True)
    try:

        @pg_app.task(name="echo")
        def pg_task(*args: Any) -> Any:
            return args

        pg_app.ready()
        with psycopg.connect(pg_url) as t1, psycopg.connect(pg_url) as t2:
            if first_id == "second writer":  # T2 holds the older transaction id
                t2.execute("SELECT pg_current_xact_id()")
            one = pg_task.options(conn=t1).enqueue("T1")
            two = pg_task.options(conn=t2).enqueue("T2")
            t2.commit()
            seen: list[Event] = []
            cursor = _poll(pg_app, EventCursor.START, seen)
            # While T1 is open, T2's event is readable only if it sorts before T1's (T2's
            # transaction id is the older): nothing can appear before it any more.
            early = [] if first_id == "first writer" else [two.id]
            assert [e.job_id for e in seen] == early
            t1.commit()
            cursor = _poll(pg_app, cursor, seen)
            assert sorted(e.job_id or 0 for e in seen) == sorted([one.id, two.id])
            assert [e.cursor for e in seen] == sorted(e.cursor for e in seen)
            assert _poll(pg_app, cursor, seen) == cursor and len(seen) == 2
    finally:
        pg_app.close()


def test_shedding_and_readmission_are_told_as_shed_and_requeued(app: offload.App) -> None:
    backend = app.backend
    ids = insert(backend, 6, queue="q", priority=0)
    backend.queues.set("q", QueuePolicy(shed_priority=1, shed_depth=4, resume_depth=2).check())
    assert backend.sweep.shed("q") == ids
    assert {tuple(_kinds(app.events(job_id=i))) for i in ids} == {("enqueued", "shed")}
    assert {e.state for e in app.events(queue="q") if e.kind == "shed"} == {"shed"}
    back = backend.sweep.readmit(SweepReadmitParams("q"))
    assert [c.id for c in back] == ids[:4]
    for job_id in ids[:4]:
        last = app.events(job_id=job_id)[-1]
        assert (last.kind, last.state) == ("requeued", "available")
    assert _kinds(app.events(job_id=ids[4])) == ["enqueued", "shed"]


def test_progress_is_told_once_per_change(app: offload.App, echo: offload.Task[..., Any]) -> None:
    handle = echo.enqueue(1)
    backend = app.backend
    job = claim_one(backend)
    for fraction in (0.5, 0.5, 0.75):  # the same report twice changes nothing the second time
        backend.claims.progress("w1", [ProgressReport(job.id, job.attempt, fraction, "x")])
    events = app.events(job_id=handle.id)
    assert _kinds(events) == ["enqueued", "started", "progress", "progress"]
    assert [e.data for e in events[2:]] == [
        {"fraction": 0.5, "message": "x"},
        {"fraction": 0.75, "message": "x"},
    ]
    backend.claims.progress("w2", [ProgressReport(job.id, job.attempt, 0.9, "x")])  # not its
    assert len(app.events(job_id=handle.id)) == 4


def test_bulk_cancels_and_retries_tell_each_job_s_change_once(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    backend = app.backend
    ids = insert(backend, 3, task="echo")
    running = claim_one(backend)  # ids[0]: asked to stop, still running: no event yet
    changed = backend.jobs.cancel_many(JobFilter(ids=ids))
    assert [c.id for c in changed] == ids
    assert _kinds(app.events(job_id=running.id)) == ["enqueued", "started"]
    for job_id in ids[1:]:
        assert _kinds(app.events(job_id=job_id)) == ["enqueued", "cancelled"]
    backend.jobs.retry_many(JobRetryManyParams(JobFilter(ids=ids), {}))
    for job_id in ids[1:]:
        last = app.events(job_id=job_id)[-1]
        assert (last.kind, last.state) == ("requeued", "available")
        assert len(app.events(job_id=job_id)) == 3
    assert len(app.events(job_id=running.id)) == 2


def test_a_rescue_tells_a_job_dead_or_cancelled_as_it_ends(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    backend = app.backend
    dying = echo.options(max_attempts=1).enqueue("last attempt")
    job = claim_one(backend, lease=0.3)
    stopping = echo.enqueue("asked to stop")
    other = claim_one(backend, lease=0.3)
    app.cancel(stopping.id)
    expire_lease(backend, job)
    expire_lease(backend, other)
    assert backend.claims.rescue(RescueParams()) == [dying.id, stopping.id]
    dead = app.events(job_id=dying.id)
    assert _kinds(dead) == ["enqueued", "started", "dead"]
    assert dead[-1].data == {"error": "lease expired: worker w1 stopped renewing it"}
    assert _kinds(app.events(job_id=stopping.id)) == ["enqueued", "started", "cancelled"]


def test_a_sweep_hook_s_take_and_untake_are_told_as_started_and_shed(app: offload.App) -> None:
    backend = app.backend
    ids = insert(backend, 5, queue="q", priority=0, task="hooked")
    backend.queues.set("q", QueuePolicy(shed_priority=1, shed_depth=4, resume_depth=2).check())
    backend.sweep.shed("q")
    taken = backend.sweep.take(SweepTakeParams("sweeper", "q", "hooked", 2, 30.0))
    assert [j.id for j in taken] == ids[:2]
    assert backend.sweep.untake(ReleaseParams("sweeper", [lease_of(j) for j in taken])) == 2
    for job_id in ids[:2]:
        events = app.events(job_id=job_id)
        assert _kinds(events) == ["enqueued", "shed", "started", "shed"]
        assert [e.attempt for e in events] == [0, 0, 1, 0]


def test_postgres_orders_by_transaction_number_not_its_text(pg_url: str) -> None:
    """Transaction 10 comes after transaction 9 (as text, '10' sorts first)."""
    pg_app = offload.App(pg_url, auto_migrate=True)
    try:
        pg_app.ready()
        raw = RawDB(pg_url)
        for tx in ("10", "9", "10", "100"):
            raw.execute(
                "INSERT INTO offload_events (tx, kind, channel, data) "
                "VALUES (?::xid8, 'notify', 'c', ?::json)",
                [tx, tx],
            )
        events = pg_app.events(limit=2) + pg_app.events(after=pg_app.events(limit=2)[-1].cursor)
        assert [(e.cursor.tx, e.data) for e in events] == [(9, 9), (10, 10), (10, 10), (100, 100)]
        assert pg_app.event_tail() == events[-1].cursor
    finally:
        pg_app.close()
