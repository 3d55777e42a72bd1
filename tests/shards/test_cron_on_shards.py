"""Cron schedules fire on the home shard: a schedule whose queue moved off it is refused at
the scheduler's start, and one whose queue moves while the scheduler runs fails alone,
while the other schedules fire and the lease rescue goes on."""

from __future__ import annotations

import threading
import time

import pytest

import offload
from offload.backends.params import ClaimParams
from offload.core.states import JobState
from tests.conformance.helpers import insert


def test_a_scheduler_is_refused_a_schedule_whose_queue_moved_off_home(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    other = offload.App(shards=shard_urls, shard_map={"two": ["reports"]})
    try:
        other.move_queue("nightly", "two")  # another process, which declares no schedule
    finally:
        other.close()
    sharded.schedule("plain", "0 3 * * *", name="tidy")  # its task's queue, at home: fine
    sharded.scheduler()
    sharded.schedule("plain", "0 4 * * *", name="nightly-plain", queue="nightly")
    with pytest.raises(offload.ConfigurationError, match="'nightly-plain' enqueues into queue"):
        sharded.scheduler()
    with pytest.raises(offload.ConfigurationError, match="moved to shard 'two'"):
        sharded.worker(queues=["default"], scheduler=True)


def test_a_schedule_whose_queue_moves_under_a_running_scheduler_fails_alone(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    sharded.schedule("plain", "* * * * * *", name="moved", queue="nightly")
    sharded.schedule("plain", "* * * * * *", name="staying", queue="daily")
    scheduler = sharded.scheduler(
        install_signals=False, elect=False, interval=0.1, rescue_interval=0.1
    )
    other = offload.App(shards=shard_urls, shard_map={"two": ["reports"]})
    try:
        other.move_queue("nightly", "two")  # after the scheduler's start-up check
    finally:
        other.close()
    lost = insert(sharded.backend, 1, queue="held")[0]
    taken = sharded.backend.claims.take(ClaimParams("gone", "held", 1, 0.2)).jobs
    assert [job.id for job in taken] == [lost]
    time.sleep(0.3)  # its lease runs out: the rescue must put it back
    thread = threading.Thread(target=scheduler.run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            fired = sharded.queue_counts().get("daily", {})
            if fired and sharded.job(lost).job().state is not JobState.RUNNING:
                break
            time.sleep(0.1)
    finally:
        scheduler.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert sharded.queue_counts().get("daily"), "the schedule beside the failing one fired"
    assert "nightly" not in sharded.queue_counts()
    assert sharded.job(lost).job().state is not JobState.RUNNING  # rescued
