"""Scheduler replicas as real processes: one job per tick, kills, downtime and misfires.

The replicas run 17 s through their kills and are all down for 5 s; at full size
(OFFLOAD_TEST_FULL=1, see tests/sizes.py) 60 s and 10 s.
"""

from __future__ import annotations

import collections
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest

import offload
from offload.core.job import Job
from tests.runtime.conftest import PYTHONPATH
from tests.sizes import sized

Start = Callable[[], subprocess.Popen[bytes]]
POLICIES = ("all", "last", "skip")


@pytest.fixture
def cron_app(db_url: str) -> Iterator[offload.App]:
    """A migrated app on a fresh database of each backend (the schedules live in the runner)."""
    application = offload.App(db_url)
    application.migrate()
    yield application
    application.close()


@pytest.fixture
def start_scheduler(db_url: str, spawned: list[subprocess.Popen[bytes]]) -> Iterator[Start]:
    """Start scheduler replicas (`tests.apps.run_scheduler`); killed at teardown."""

    def start() -> subprocess.Popen[bytes]:
        env = dict(os.environ, OFFLOAD_URL=db_url, PYTHONPATH=PYTHONPATH)
        process = subprocess.Popen([sys.executable, "-m", "tests.apps.run_scheduler"], env=env)
        spawned.append(process)
        return process

    yield start


def tick_jobs(app: offload.App, schedule: str) -> list[Job]:
    """Every job enqueued by `schedule`, oldest tick first."""
    jobs: list[Job] = []
    before: int | None = None
    while page := app.jobs(task="tick", before_id=before, limit=500):
        jobs += [j for j in page if j.meta.get("schedule") == schedule]
        before = page[-1].id
    return sorted(jobs, key=lambda j: j.meta["tick"])


def ticks_of(jobs: list[Job]) -> list[datetime]:
    return [datetime.fromisoformat(j.meta["tick"]) for j in jobs]


def assert_one_per_tick_without_gaps(ticks: list[datetime]) -> None:
    per_tick = collections.Counter(ticks)
    assert set(per_tick.values()) == {1}, f"ticks fired more than once: {per_tick.most_common(3)}"
    steps = {b - a for a, b in itertools.pairwise(ticks)}
    assert steps == {timedelta(seconds=1)}, f"missed ticks: steps {sorted(steps)}"


def wait_for_ticks(app: offload.App, more: int, since: dict[str, int] | None = None) -> None:
    """Poll until every policy's schedule has fired `more` ticks past its count in `since`
    (a scheduler starting on a loaded CPU may take seconds to fire its first)."""
    deadline = time.monotonic() + 60
    while True:
        fired = {p: len(tick_jobs(app, f"every_second_{p}")) for p in POLICIES}
        if all(n >= (since or {}).get(p, 0) + more for p, n in fired.items()):
            return
        assert time.monotonic() < deadline, f"the schedulers fired only {fired} ticks"
        time.sleep(0.2)


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def test_three_replicas_fire_each_tick_once_through_kills(
    cron_app: offload.App, start_scheduler: Start
) -> None:
    phases = sized((6, 5, 6), (20, 15, 25))  # seconds before each kill
    replicas = [start_scheduler() for _ in range(3)]
    for replica, seconds in zip(replicas, phases, strict=True):
        time.sleep(seconds)
        kill(replica)
    for policy in POLICIES:
        ticks = ticks_of(tick_jobs(cron_app, f"every_second_{policy}"))
        assert len(ticks) >= sum(phases) - 5, len(ticks)  # the first seconds start Python
        assert_one_per_tick_without_gaps(ticks)
    print(
        f"{len(ticks)} ticks over {sum(phases)} s with 3 replicas and 2 kills: "
        "every tick exactly once"
    )


def test_misfire_policies_after_every_replica_was_down(
    cron_app: offload.App, start_scheduler: Start
) -> None:
    replicas = [start_scheduler() for _ in range(3)]
    wait_for_ticks(cron_app, 3)
    for process in replicas:
        kill(process)
    down_since = cron_app.backend.now()
    down = sized(5, 10)
    time.sleep(down)
    fired = {p: len(tick_jobs(cron_app, f"every_second_{p}")) for p in POLICIES}
    start_scheduler()
    wait_for_ticks(cron_app, 3, since=fired)  # skip: 3 new ticks; last: its catch-up and 2
    ticks = {p: ticks_of(tick_jobs(cron_app, f"every_second_{p}")) for p in POLICIES}
    before = {p: max(t for t in ts if t <= down_since) for p, ts in ticks.items()}
    after = {p: min(t for t in ts if t > down_since) for p, ts in ticks.items()}
    for policy, ts in ticks.items():
        assert len(set(ts)) == len(ts), f"{policy}: a tick fired twice"
    # all: every missed tick ran, so the run has no gap at all.
    assert_one_per_tick_without_gaps(ticks["all"])
    # last: the ticks missed while down collapse into one job, for the newest of them ...
    assert after["last"] - before["last"] >= timedelta(seconds=down - 1)
    assert_one_per_tick_without_gaps([t for t in ticks["last"] if t >= after["last"]])
    # ... which skip does not run: it carries on from the tick after.
    assert after["skip"] == after["last"] + timedelta(seconds=1)
    assert_one_per_tick_without_gaps([t for t in ticks["skip"] if t >= after["skip"]])
    missed = [t for t in ticks["all"] if before["all"] < t <= after["last"]]
    print(f"down {down} s: all ran {len(missed)} missed ticks, last ran 1, skip ran 0")
