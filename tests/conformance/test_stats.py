"""The charts' roll-ups (`App.stats`, the `stats` area): counts per minute and queue from
the events, each event counted once however many processes roll up at a time, kept in the
database across restarts, and the wait from due to first start within the histogram's
resolution. On PostgreSQL the cursor never passes an event a transaction may still commit."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import timedelta

import psycopg
import pytest

import offload
from offload.backends.base import Backend
from offload.backends.params import ClaimParams, FinishParams, Outcome
from offload.core.errors import ValidationError
from offload.core.states import FINISHED, JobState
from offload.core.stats import StatsPoint
from tests.conformance.helpers import error_json, insert

#: How far a quantile read from the histogram may be from the true value (a bin's middle
#: is within 2**0.25 of every wait in it), with room for the clocks' rounding.
RESOLUTION = 1.2


def totals(points: list[StatsPoint]) -> tuple[int, int, int, int, int]:
    return (
        sum(p.enqueued for p in points),
        sum(p.started for p in points),
        sum(p.succeeded for p in points),
        sum(p.failed for p in points),
        sum(p.dead for p in points),
    )


def run(backend: Backend, queue: str, states: list[JobState]) -> None:
    """Claim one job of `queue` per state given and end its attempt so."""
    jobs = backend.claims.claim(ClaimParams("w1", queue, len(states), 30.0))
    assert len(jobs) == len(states)
    outcomes = []
    for job, state in zip(jobs, states, strict=True):
        if state is JobState.SUCCEEDED:
            outcomes.append(Outcome(job.id, job.attempt, state, result="1"))
        else:
            outcomes.append(Outcome(job.id, job.attempt, state, error=error_json(), delay=60))
    assert backend.claims.finish(FinishParams("w1", outcomes)) == []


def test_counts_after_a_run_of_jobs(app: offload.App, backend: Backend) -> None:
    insert(backend, 5, queue="q", max_attempts=2)
    insert(backend, 2, queue="other")
    run(backend, "q", [JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.RETRYING])
    run(backend, "q", [JobState.DEAD])
    points = app.stats(timedelta(minutes=10))
    assert len(points) == 10
    assert totals(points) == (7, 4, 2, 2, 1)
    assert totals(app.stats(timedelta(minutes=10), queue="q")) == (5, 4, 2, 2, 1)
    assert totals(app.stats(timedelta(minutes=10), queue="other")) == (2, 0, 0, 0, 0)
    assert totals(app.stats(timedelta(minutes=10), queue="none")) == (0, 0, 0, 0, 0)
    # Incremental: only what happened since is added.
    run(backend, "q", [JobState.SUCCEEDED])
    assert totals(app.stats(timedelta(minutes=10), queue="q")) == (5, 5, 3, 2, 1)


def test_buckets_are_continuous_and_aligned(app: offload.App, backend: Backend) -> None:
    insert(backend, 3)
    for window, size, count in ((timedelta(hours=1), 60, 60), (timedelta(days=1), 300, 288)):
        points = app.stats(window, bucket_seconds=size)
        assert len(points) == count
        starts = [p.at.timestamp() for p in points]
        assert all(s % size == 0 for s in starts)
        assert all(b - a == size for a, b in itertools.pairwise(starts))
        assert points[-1].at <= backend.now() < points[-1].at + timedelta(seconds=size)
        assert totals(points)[0] == 3
        quiet = [p for p in points if p.enqueued == 0]
        assert all(p.latency_p50 is None and p.started == 0 for p in quiet)


@pytest.mark.parametrize(
    ("window", "size"),
    [
        (timedelta(hours=1), 30),
        (timedelta(hours=1), 0),
        (timedelta(hours=1), 61),
        (timedelta(0), 60),
        (timedelta(days=30), 60),
        (3600, 60),
    ],
)
def test_bad_windows_are_refused(app: offload.App, window: timedelta, size: int) -> None:
    with pytest.raises(ValidationError):
        app.stats(window, bucket_seconds=size)


def test_concurrent_rollers_count_each_event_once(
    app: offload.App, backend: Backend, migrated_db_url: str
) -> None:
    for _ in range(6):
        insert(backend, 500, queue="busy")
    apps = [offload.App(migrated_db_url) for _ in range(4)]
    errors: list[BaseException] = []

    def roll(other: offload.App) -> None:
        try:
            for _ in range(3):
                other.backend.stats.roll(limit=100)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=roll, args=(a,)) for a in apps]
    for thread in threads:
        thread.start()
    insert(backend, 500, queue="busy")  # while they roll
    for thread in threads:
        thread.join()
    for other in apps:
        other.close()
    assert errors == []
    assert totals(app.stats(timedelta(minutes=5), queue="busy"))[0] == 3500
    assert totals(app.stats(timedelta(minutes=5), queue="busy"))[0] == 3500


def test_history_survives_a_restart(
    app: offload.App, backend: Backend, migrated_db_url: str
) -> None:
    insert(backend, 4, queue="kept")
    before = app.stats(timedelta(minutes=5), queue="kept")
    app.close()
    again = offload.App(migrated_db_url)
    try:
        after = again.stats(timedelta(minutes=5), queue="kept")
        assert totals(after) == totals(before) == (4, 0, 0, 0, 0)
        assert again.backend.stats.roll() == 0  # nothing left to roll: nothing counted twice
    finally:
        again.close()


def test_latency_quantiles_within_the_histograms_resolution(
    app: offload.App, backend: Backend
) -> None:
    started = time.monotonic()
    insert(backend, 10, queue="lat")
    stored = time.monotonic()
    time.sleep(0.4)
    claim_start = time.monotonic()
    assert len(backend.claims.claim(ClaimParams("w1", "lat", 10, 30.0))) == 10
    claimed = time.monotonic()
    shortest, longest = claim_start - stored, claimed - started
    # A delayed job waits from its run_at, not from its enqueue.
    insert(backend, 1, queue="later", delay=0.5)
    time.sleep(0.8)
    later = time.monotonic()
    assert len(backend.claims.claim(ClaimParams("w1", "later", 1, 30.0))) == 1
    late_wait = (time.monotonic() - later) + 0.3
    points = [p for p in app.stats(timedelta(minutes=5), queue="lat") if p.started]
    waits = [(p.latency_p50, p.latency_p95) for p in points]
    for p50, p95 in waits:
        assert p50 is not None and p95 is not None
        assert shortest / RESOLUTION <= p50 <= p95 <= longest * RESOLUTION, waits
    (point,) = [p for p in app.stats(timedelta(minutes=5), queue="later") if p.started]
    assert point.latency_p50 is not None
    assert point.latency_p50 <= late_wait * RESOLUTION + 0.1  # from run_at: about 0.3 s
    assert point.latency_p50 < 0.6, "the wait counts from run_at, not from the enqueue"


def test_a_retry_is_not_a_first_start(app: offload.App, backend: Backend) -> None:
    insert(backend, 1, queue="r", max_attempts=3)
    jobs = backend.claims.claim(ClaimParams("w1", "r", 1, 30.0))
    error = Outcome(jobs[0].id, 1, JobState.RETRYING, error=error_json(), delay=0.0)
    backend.claims.finish(FinishParams("w1", [error]))
    assert len(backend.claims.claim(ClaimParams("w1", "r", 1, 30.0))) == 1
    (point,) = [p for p in app.stats(timedelta(minutes=5), queue="r") if p.enqueued]
    assert (point.started, point.failed) == (2, 1)
    assert point.latency_p50 is not None  # one wait: the first start's


def test_an_open_transaction_holds_the_cursor_back(pg_url: str) -> None:
    """An event of a transaction still open (a lower position, committed later) is counted
    once it commits, never skipped by a cursor that moved past it. PostgreSQL only: on
    SQLite, with one writer at a time, transactions commit in position order."""
    app = offload.App(pg_url)
    app.migrate()

    @app.task(name="ship")
    def ship(n: int) -> int:
        return n

    try:
        with psycopg.connect(pg_url) as conn:
            ship.options(conn=conn, queue="tx").enqueue(1)  # open: its event waits
            ship.options(queue="tx").enqueue(2)
            ship.options(queue="tx").enqueue(3)
            assert totals(app.stats(timedelta(minutes=5), queue="tx"))[0] == 0
            conn.commit()
        assert totals(app.stats(timedelta(minutes=5), queue="tx"))[0] == 3
    finally:
        app.close()


def test_prune_drops_old_buckets_only(app: offload.App, backend: Backend) -> None:
    insert(backend, 2, queue="p")
    app.stats()
    assert backend.stats.prune(3600.0) == 0
    assert backend.stats.prune(0.0) >= 1
    assert totals(app.stats(queue="p")) == (0, 0, 0, 0, 0)


def test_the_schedulers_prune_rolls_up_before_dropping_events(
    app: offload.App, backend: Backend
) -> None:
    insert(backend, 3, queue="gone")
    run(backend, "gone", [JobState.SUCCEEDED])
    retention = dict.fromkeys(FINISHED, 0.0)
    # SQLite's clock counts milliseconds: an event of the prune's own millisecond is not
    # older than 0 s, so the prune comes a little later (a run in CI once left the last one).
    time.sleep(0.01)
    app.scheduler(retention=retention, install_signals=False).prune()
    assert app.events() == []  # every event pruned...
    assert totals(app.stats(timedelta(minutes=5), queue="gone")) == (3, 1, 1, 0, 0)  # ...counted


def test_a_roll_up_without_waits_keeps_the_buckets_histogram(
    app: offload.App, backend: Backend
) -> None:
    """Starts and later events of one minute land in different roll-ups: a roll-up of only
    enqueues or successes must not wipe the latency histogram the bucket already holds."""
    insert(backend, 3, queue="h")
    assert len(backend.claims.claim(ClaimParams("w1", "h", 3, 30.0))) == 3
    first = [p for p in app.stats(timedelta(minutes=5), queue="h") if p.started]
    assert first and all(p.latency_p50 is not None for p in first)
    insert(backend, 1, queue="h")  # an enqueue only, rolled up alone
    assert backend.stats.roll() >= 1
    again = [p for p in app.stats(timedelta(minutes=5), queue="h") if p.started]
    assert [(p.at, p.latency_p50, p.latency_p95) for p in again] == [
        (p.at, p.latency_p50, p.latency_p95) for p in first
    ]
