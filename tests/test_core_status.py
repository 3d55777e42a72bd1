"""The pure rules behind what faces show: worker liveness and a schedule's next run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from offload.core.schedule import ScheduleDef
from offload.core.status import LOST_AFTER, is_lost, silent_for

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def test_silence_is_the_seconds_since_the_last_heartbeat() -> None:
    assert silent_for(T0, T0) == 0.0
    assert silent_for(T0 + timedelta(seconds=12, milliseconds=500), T0) == 12.5
    assert silent_for(T0 + timedelta(hours=1), T0) == 3600.0


def test_a_worker_is_lost_only_when_silent_for_longer_than_lost_after() -> None:
    assert LOST_AFTER == 30.0  # three missed heartbeats at the longest interval (10 s)
    assert not is_lost(0.0)
    assert not is_lost(LOST_AFTER)
    assert is_lost(LOST_AFTER + 0.001)
    assert is_lost(silent_for(T0 + timedelta(minutes=5), T0))


def test_next_run_is_the_first_tick_after_now() -> None:
    hourly = ScheduleDef("hourly", "0 * * * *", "t")
    now = T0 + timedelta(minutes=20)
    assert hourly.next_run(now, last_tick=T0) == T0 + timedelta(hours=1)
    # A tick exactly at `now` is the one being fired: the next run is the one after it.
    assert hourly.next_run(T0, last_tick=T0 - timedelta(hours=1)) == T0 + timedelta(hours=1)


def test_next_run_is_after_a_last_tick_that_a_faster_clock_already_handled() -> None:
    hourly = ScheduleDef("hourly", "0 * * * *", "t")
    ahead = T0 + timedelta(hours=2)  # a replica's clock ran ahead and fired 13:00 and 14:00
    assert hourly.next_run(T0 + timedelta(minutes=20), last_tick=ahead) == T0 + timedelta(hours=3)


def test_next_run_follows_the_schedule_time_zone() -> None:
    nightly = ScheduleDef("nightly", "0 3 * * *", "t", tz="Europe/Paris")
    # 03:00 in Paris is 02:00 UTC in January (CET) and 01:00 UTC in July (CEST).
    assert nightly.next_run(T0, last_tick=T0) == datetime(2026, 1, 16, 2, tzinfo=UTC)
    july = datetime(2026, 7, 15, 12, tzinfo=UTC)
    assert nightly.next_run(july, last_tick=july) == datetime(2026, 7, 16, 1, tzinfo=UTC)
