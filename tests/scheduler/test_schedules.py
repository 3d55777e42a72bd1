"""Schedules in one process: declaration errors, exactly-once ticks, pause, skew, DST."""

from __future__ import annotations

import collections
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import offload
from offload.backends.params import ClaimParams
from offload.core.errors import ConfigurationError, ScheduleNotFound, UnknownTask
from offload.core.schedule import ScheduleDef
from offload.core.states import JobState


class FakeClock:
    """A clock the test moves by hand, offset from a start time."""

    def __init__(self, start: datetime, skew: timedelta = timedelta(0)) -> None:
        self.now = start
        self.skew = skew

    def __call__(self) -> datetime:
        return self.now + self.skew


def every_second(app: offload.App, name: str = "beat", **options: object) -> ScheduleDef:
    @app.task(name=f"{name}_task")
    def beat() -> None:
        return None

    return app.schedule(beat, "* * * * * *", name=name, **options)  # type: ignore[arg-type]


def scheduled_jobs(app: offload.App) -> list[offload.Job]:
    return [j for j in app.jobs(limit=1000) if "schedule" in j.meta]


def test_bad_declarations_are_refused_and_store_nothing(app: offload.App) -> None:
    @app.task(name="report")
    def report() -> None:
        return None

    with pytest.raises(ConfigurationError, match="bad cron expression '61 \\* \\* \\* \\*'"):
        app.schedule(report, "61 * * * *")
    with pytest.raises(ConfigurationError, match="unknown cron macro '@fortnightly'"):
        app.schedule(report, "@fortnightly")
    with pytest.raises(ConfigurationError, match="unknown time zone 'Mars/Olympus'"):
        app.schedule(report, "0 3 * * *", tz="Mars/Olympus")
    with pytest.raises(UnknownTask, match="did you mean 'report'"):
        app.schedule("reprot", "0 3 * * *")
    with pytest.raises(ConfigurationError, match="unknown misfire policy 'sometimes'"):
        app.schedule(report, "0 3 * * *", misfire="sometimes")
    with pytest.raises(offload.SerializationError, match="argument 0"):
        app.schedule(report, "0 3 * * *", args=[{1, 2}])
    assert app.schedules == {}
    app.scheduler().backend.schedules.sync([])
    assert app.cron_list() == []


def test_macros_and_seconds_field_are_understood(app: offload.App) -> None:
    @app.task(name="nightly")
    def nightly() -> None:
        return None

    sched = app.schedule(nightly, "@daily", tz="Europe/Paris")
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert sched.next_tick(start) == datetime(2026, 1, 1, 23, tzinfo=UTC)  # 00:00 in Paris
    quick = ScheduleDef("quick", "*/15 * * * * *", "nightly")
    assert quick.next_tick(start) == start + timedelta(seconds=15)


def test_replicas_on_one_clock_fire_each_tick_once(app: offload.App) -> None:
    every_second(app)
    start = app.backend.now().replace(microsecond=0)
    clock = FakeClock(start)
    replicas = [app.scheduler(clock=clock) for _ in range(3)]
    replicas[0].backend.schedules.sync(list(app.schedules.values()))
    for step in range(1, 31):
        clock.now = start + timedelta(seconds=step, milliseconds=10)
        for replica in replicas:
            replica.tick()
    ticks = collections.Counter(j.meta["tick"] for j in scheduled_jobs(app))
    assert len(ticks) == 30
    assert set(ticks.values()) == {1}
    assert sum(r.fired for r in replicas) == 30


def test_skewed_replica_clocks_never_double_fire_or_start_early(app: offload.App) -> None:
    """RELIABILITY 19: replicas at -5 min, 0 and +5 min; DB clock decides when jobs run."""
    sched = every_second(app)
    start = app.backend.now().replace(microsecond=0)
    clocks = [FakeClock(start, timedelta(minutes=m)) for m in (-5, 0, 5)]
    replicas = [app.scheduler(clock=c) for c in clocks]
    replicas[0].backend.schedules.sync([sched])
    for step in range(1, 11):
        for clock, replica in zip(clocks, replicas, strict=True):
            clock.now = start + timedelta(seconds=step)
            replica.tick()
    jobs = scheduled_jobs(app)
    ticks = collections.Counter(j.meta["tick"] for j in jobs)
    assert set(ticks.values()) == {1}, "no tick fired twice"
    for job in jobs:
        assert job.run_at == datetime.fromisoformat(job.meta["tick"])
    db_now = app.backend.now()
    claimed = app.backend.claims.claim(ClaimParams("w", "default", 10_000, 30))
    assert all(job.run_at <= db_now + timedelta(seconds=1) for job in claimed)
    assert len(claimed) < len(jobs), "future ticks of the fast clock are not claimable yet"


def test_pause_holds_for_every_replica_and_resume_skips_the_paused_ticks(
    app: offload.App,
) -> None:
    every_second(app)
    start = app.backend.now().replace(microsecond=0)
    clock = FakeClock(start)
    first, second = app.scheduler(clock=clock), app.scheduler(clock=clock)
    first.backend.schedules.sync(list(app.schedules.values()))
    app.cron_pause("beat")
    for step in range(1, 4):
        clock.now = start + timedelta(seconds=step)
        first.tick()
        second.tick()
    assert scheduled_jobs(app) == []
    (state,) = app.cron_list()
    assert state.paused
    app.cron_pause("beat", paused=False)
    clock.now = start + timedelta(seconds=4)
    second.tick()
    assert [j.meta["tick"] for j in scheduled_jobs(app)] == [clock.now.isoformat()]
    with pytest.raises(ScheduleNotFound):
        app.cron_pause("nope")


def test_cron_run_enqueues_once_now_and_list_shows_the_last_outcome(app: offload.App) -> None:
    every_second(app, args=[])
    app.scheduler().backend.schedules.sync(list(app.schedules.values()))
    handle = app.cron_run("beat")
    job = handle.job()
    assert job.meta == {"schedule": "beat", "manual": True}
    assert job.state is JobState.AVAILABLE
    scheduler = app.scheduler()
    scheduler.tick()
    (state,) = app.cron_list()
    assert state.name == "beat" and state.cron == "* * * * * *" and state.tz == "UTC"
    with pytest.raises(ScheduleNotFound):
        app.cron_run("nope")


ZONES = ["Europe/Paris", "America/New_York", "Australia/Sydney", "America/Santiago", "Asia/Tehran"]


def transitions(zone: ZoneInfo, first_year: int, last_year: int) -> list[date]:
    """Local dates on which the zone's UTC offset changes."""
    found = []
    day = date(first_year, 1, 1)
    offset = datetime(day.year, 1, 1, 12, tzinfo=zone).utcoffset()
    while day.year <= last_year:
        day += timedelta(days=1)
        current = datetime(day.year, day.month, day.day, 12, tzinfo=zone).utcoffset()
        if current != offset:
            found.append(day)
            offset = current
    return found


@pytest.mark.parametrize("zone_name", ZONES)
def test_dst_days_run_once_per_local_day(zone_name: str) -> None:
    """RELIABILITY 21: every transition 2000-2040, schedules at 01:30 and 02:30 local.

    The rule (cronsim's, after Debian cron): a time skipped by spring-forward runs once at the
    first valid instant after the gap; a time repeated by fall-back runs once, at its first
    occurrence.
    """
    zone = ZoneInfo(zone_name)
    days = transitions(zone, 2000, 2040)
    assert days, zone_name
    for cron in ("30 1 * * *", "30 2 * * *", "30 0 * * *"):
        sched = ScheduleDef("dst", cron, "t", tz=zone_name)
        for day in days:
            start = datetime(day.year, day.month, day.day, tzinfo=zone) - timedelta(days=2)
            runs: collections.Counter[date] = collections.Counter()
            for tick in sched.ticks_after(start):
                local = tick.astimezone(zone)
                if local.date() > day + timedelta(days=2):
                    break
                runs[local.date()] += 1
            for offset in range(-1, 3):
                d = day + timedelta(days=offset)
                assert runs[d] == 1, (zone_name, cron, d, runs)
