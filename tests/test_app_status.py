"""`App.worker_statuses` and `App.schedule_statuses`, on both backends: the liveness and
next-run rules that every face (CLI, HTTP, dashboard) shows without computing them itself."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import offload
from offload.core.records import WorkerInfo
from offload.core.schedule import ScheduleDef
from offload.core.status import LOST_AFTER


def register_worker(app: offload.App, worker_id: str = "w1") -> None:
    """A worker row as a running worker writes it (the database stamps its times)."""
    stamp = datetime.now(UTC)
    app.backend.workers.register(
        WorkerInfo(
            id=worker_id,
            host="host-1",
            pid=4321,
            queues=["a", "b"],
            concurrency=3,
            started_at=stamp,
            heartbeat_at=stamp,
        )
    )


def declare_nightly(app: offload.App) -> ScheduleDef:
    @app.task(name="nightly")
    def nightly() -> None:
        return None

    sched = app.schedule(nightly, "0 3 * * *", tz="Europe/Paris")
    app.backend.schedules.sync([sched])
    return sched


def test_worker_statuses_are_the_registry_with_silence_and_liveness(app: offload.App) -> None:
    assert app.worker_statuses() == []
    register_worker(app)
    (info,) = app.workers()
    (status,) = app.worker_statuses()
    assert (status.id, status.host, status.pid, status.queues, status.concurrency) == (
        "w1",
        "host-1",
        4321,
        ["a", "b"],
        3,
    )
    assert (status.started_at, status.heartbeat_at) == (info.started_at, info.heartbeat_at)
    # Measured by the database clock, read after the heartbeats: never negative.
    assert 0 <= status.silent_for < 10
    assert not status.lost


def test_a_worker_is_lost_once_silent_for_longer_than_lost_after(app: offload.App) -> None:
    register_worker(app)
    (info,) = app.workers()
    beat = info.heartbeat_at

    (at_limit,) = app.worker_statuses(now=beat + timedelta(seconds=LOST_AFTER))
    assert at_limit.silent_for == LOST_AFTER
    assert not at_limit.lost

    (gone,) = app.worker_statuses(now=beat + timedelta(seconds=LOST_AFTER + 1))
    assert gone.silent_for == LOST_AFTER + 1
    assert gone.lost


def test_schedule_statuses_are_the_stored_schedules_with_their_next_run(
    app: offload.App,
) -> None:
    assert app.schedule_statuses() == []
    sched = declare_nightly(app)
    (stored,) = app.cron_list()
    (status,) = app.schedule_statuses()
    assert (
        status.name,
        status.cron,
        status.tz,
        status.task,
        status.misfire,
        status.paused,
        status.last_tick,
        status.checked_at,
        status.last_job_id,
        status.last_state,
    ) == (
        stored.name,
        stored.cron,
        stored.tz,
        stored.task,
        stored.misfire,
        stored.paused,
        stored.last_tick,
        stored.checked_at,
        stored.last_job_id,
        stored.last_state,
    )
    assert status.next_run is not None
    assert status.next_run > stored.last_tick
    assert status.next_run.astimezone(ZoneInfo("Europe/Paris")).time() == time(3)

    later = stored.last_tick + timedelta(days=2)
    (status,) = app.schedule_statuses(now=later)
    assert status.next_run == sched.next_tick(later)


def test_next_run_is_after_the_last_tick_when_the_clock_is_behind_it(app: offload.App) -> None:
    sched = declare_nightly(app)
    (stored,) = app.cron_list()
    (status,) = app.schedule_statuses(now=stored.last_tick - timedelta(days=3))
    assert status.next_run == sched.next_tick(stored.last_tick)


def test_a_paused_schedule_keeps_its_next_run_and_says_it_is_paused(app: offload.App) -> None:
    sched = declare_nightly(app)
    app.cron_pause("nightly")
    (stored,) = app.cron_list()
    now = stored.last_tick + timedelta(hours=1)
    (status,) = app.schedule_statuses(now=now)
    assert status.paused
    assert status.next_run == sched.next_tick(now)


def test_a_schedule_this_app_does_not_declare_has_no_next_run(app: offload.App) -> None:
    declare_nightly(app)
    other = offload.App(app.url)  # same database, no schedules declared
    try:
        (status,) = other.schedule_statuses()
    finally:
        other.close()
    assert status.name == "nightly"
    assert status.next_run is None
