"""A host whose clock is 5 minutes off (the issue's bad input): leases, the maintenance
duties and cron ticks stay correct, because each is decided by the database's clock, and a
host's own clock is only ever read as durations (monotonic) or for display."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

import offload
from offload.backends.params import ClaimParams, ElectParams
from offload.core.states import JobState
from offload.runtime.leader import RESCUE, UPKEEP
from tests.runtime.conftest import PYTHONPATH

ROOT = Path(__file__).resolve().parents[2]
SRC = Path(offload.__file__).resolve().parent
#: Seconds the skewed host runs.
RUN = 6.0
#: The parent's lease on both duties while it holds them.
PARENT_LEASE = 2.0
#: Faces that show or sign times for people (a session cookie's expiry), not for leases.
FACES = {"cli", "dashboard", "server", "demo", "contrib", "client"}
#: Where the host's wall clock may be read: a run's error entry is stamped with it, and so
#: are the middleware's start and end events (shown to user code, never compared with the
#: database's).
WALL_CLOCK_ALLOWED = {"runtime/outcomes.py", "runtime/hooks.py"}
WALL_CLOCK_CALLS = {"now", "utcnow", "today", "time", "time_ns"}
WALL_CLOCK_OWNERS = {"datetime", "date", "time"}


def test_offload_reads_no_wall_clock_for_leases_or_schedules() -> None:
    """What the skewed host below relies on: below the faces, no wall clock is read except
    the error entry's stamp (the simulated skew shifts Python's wall clock only)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative.split("/")[0] in FACES or relative in WALL_CLOCK_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in WALL_CLOCK_CALLS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in WALL_CLOCK_OWNERS
            ):
                found.append(f"{relative}:{node.lineno}")
    assert found == []


@pytest.mark.parametrize("offset", [300.0, -300.0], ids=["ahead", "behind"])
def test_a_host_5_minutes_off_steals_no_lease_and_fires_ticks_by_the_database_clock(
    migrated_db_url: str, offset: float
) -> None:
    app = offload.App(migrated_db_url)

    @app.task(name="slow")
    def slow(seconds: float) -> None:
        time.sleep(seconds)

    backend = app.backend
    alive = slow.enqueue(60.0)
    gone = slow.enqueue(0.5)
    (held,) = backend.claims.take(ClaimParams("alive", "default", 1, 60.0)).jobs
    (lapsing,) = backend.claims.take(ClaimParams("gone", "default", 1, 1.5)).jobs
    assert (held.id, lapsing.id) == (alive.id, gone.id)
    duties = {
        duty: backend.leaders.elect(ElectParams(duty, "parent", None, PARENT_LEASE))
        for duty in (RESCUE, UPKEEP)
    }
    started_db = backend.now()
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    command = [
        sys.executable,
        "-m",
        "tests.election.skewed_host",
        migrated_db_url,
        str(offset),
        str(RUN),
    ]
    host = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        # The parent keeps both duties for a while: the skewed host reads them as live
        # (by the database's clock) and must not take them.
        until = time.monotonic() + 2.5
        while time.monotonic() < until:
            for duty, lease in list(duties.items()):
                renewed = backend.leaders.elect(
                    ElectParams(duty, "parent", lease.term, PARENT_LEASE)
                )
                assert renewed.held_by("parent"), f"the skewed host took {duty} from a live holder"
                assert renewed.term == lease.term
                duties[duty] = renewed
            time.sleep(0.3)
        # The lapsed job is rescued and run again by the skewed host, whose claim leases it
        # for its 5 s by the database's clock (not 5 minutes more or less).
        deadline = time.monotonic() + 20
        while (job := backend.jobs.get(gone.id)).attempt < 2 or job.state is not JobState.RUNNING:
            assert job.state is not JobState.SUCCEEDED or job.attempt == 2
            if job.state is JobState.SUCCEEDED:
                break
            assert time.monotonic() < deadline, f"job {gone.id} was not run again: {job}"
            time.sleep(0.02)
        if job.state is JobState.RUNNING:
            assert job.lease_until is not None
            left = (job.lease_until - backend.now()).total_seconds()
            assert 0 < left <= 5.5, f"a lease by the skewed clock: {left:.1f}s left"
        assert host.wait(30) == 0
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
    ended_db = backend.now()

    kept = backend.jobs.get(alive.id)  # its lease was live by the database's clock
    assert (kept.state, kept.worker, kept.attempt, kept.errors) == (
        JobState.RUNNING,
        "alive",
        1,
        [],
    )
    rerun = backend.jobs.get(gone.id)
    assert rerun.state is JobState.SUCCEEDED
    assert rerun.attempt == 2
    assert [e["type"] for e in rerun.errors] == ["WorkerLost"]
    assert lapsing.lease_until is not None and rerun.started_at is not None
    assert rerun.started_at >= lapsing.lease_until  # not rescued before its lease ended
    # The skewed host took each duty only once the parent's lease had ended, in a later term.
    for duty, last in duties.items():
        now = backend.leaders.read(duty)
        assert now is not None and now.holder != "parent"
        assert now.term > last.term
        assert now.since >= last.expires_at
    # Its scheduler fired one tick a second, each stamped by the database's clock: neither
    # five minutes of catch-up ticks (clock ahead) nor none (behind).
    ticks = app.jobs(task="tick", limit=1000)
    assert 1 <= len(ticks) <= RUN + 2
    slack = timedelta(seconds=1)
    for tick in ticks:
        assert started_db - slack <= tick.enqueued_at <= ended_db + slack
        assert started_db - slack <= tick.run_at <= ended_db + slack
    app.close()
