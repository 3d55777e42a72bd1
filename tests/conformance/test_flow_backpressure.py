"""Back pressure and admission control at enqueue (issue 14 items 1-2, new jobs of item 5).

Bounded queues refuse with QueueFull past max_depth, exactly and all-or-nothing; admission
control refuses (Overloaded) or sheds low priorities over a watermark; retry_after comes
from the drain rate live workers report; queues without a policy behave as before.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

import offload
from offload.backends.params import ClaimParams
from offload.core.errors import ConfigurationError
from offload.core.flow import RETRY_AFTER_CEILING, QueuePolicy
from offload.core.records import WorkerInfo
from offload.core.states import JobState
from tests.conformance.helpers import RawDB, insert_jobs, is_sqlite, new_job
from tests.conformance.test_transactional import caller_connection

Task = offload.Task[..., Any]


@pytest.fixture
def job(app: offload.App) -> Task:
    @app.task(name="job")
    def job(n: int = 0) -> int:
        return n

    return job


def waiting(db_url: str, queue: str = "q") -> int:
    """Jobs of `queue` not yet started, counted straight from the database."""
    return int(
        RawDB(db_url).scalar(
            "SELECT count(*) FROM offload_jobs WHERE queue = ? "
            "AND state IN ('available', 'scheduled', 'retrying')",
            (queue,),
        )
    )


def stored(db_url: str) -> int:
    return RawDB(db_url).count_jobs()


def test_queue_full_names_queue_depth_limit_and_retry_after(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("q", max_depth=2)
    into = job.options(queue="q")
    into.enqueue(1)
    into.enqueue(2)
    with pytest.raises(offload.QueueFull) as refused:
        into.enqueue(3)
    full = refused.value
    assert isinstance(full, offload.BackPressure)
    assert (full.queue, full.depth, full.limit) == ("q", 2, 2)
    assert full.retry_after == RETRY_AFTER_CEILING  # no worker has measured a drain rate
    assert "queue 'q' is full: 2 jobs waiting, max_depth 2" in str(full)
    assert stored(db_url) == 2


def test_the_bound_is_exact_at_the_edge_and_enqueue_many_is_all_or_nothing(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("q", max_depth=5)
    into = job.options(queue="q")
    assert len(into.enqueue_many([(i,) for i in range(3)])) == 3
    with pytest.raises(offload.QueueFull) as refused:
        into.enqueue_many([(i,) for i in range(3)])
    assert (refused.value.depth, refused.value.limit) == (3, 5)
    assert stored(db_url) == 3
    assert len(into.enqueue_many([(i,) for i in range(2)])) == 2
    assert waiting(db_url) == 5
    with pytest.raises(offload.QueueFull):
        into.enqueue(9)
    assert stored(db_url) == 5


def test_scheduled_jobs_count_and_started_ones_free_their_place(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("q", max_depth=2)
    job.options(queue="q", delay=3600).enqueue(1)
    job.options(queue="q").enqueue(2)
    with pytest.raises(offload.QueueFull):
        job.options(queue="q").enqueue(3)
    (claimed,) = app.backend.claims.claim(ClaimParams("w", "q", 1, 30.0))
    assert claimed.state is JobState.RUNNING
    job.options(queue="q").enqueue(3)
    assert waiting(db_url) == 2


def test_an_idempotency_key_already_held_returns_its_job_even_when_full(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("q", max_depth=1)
    first = job.options(queue="q", idempotency_key="k").enqueue(1)
    again = job.options(queue="q", idempotency_key="k").enqueue(1)
    assert again.id == first.id
    with pytest.raises(offload.QueueFull):
        job.options(queue="q", idempotency_key="other").enqueue(1)
    keyed = [new_job("job", "q", [1], idempotency_key=key) for key in "kk"]
    assert insert_jobs(app.backend, keyed) == [first.id, first.id]
    with pytest.raises(offload.QueueFull):  # one new key in the batch: over the bound
        insert_jobs(app.backend, [*keyed, new_job("job", "q", [2], idempotency_key="n")])
    assert stored(db_url) == 1


def test_a_transactional_enqueue_obeys_the_bound_in_the_callers_transaction(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("q", max_depth=2)
    app.ready()
    with caller_connection(db_url) as conn:
        into = job.options(queue="q", conn=conn)
        into.enqueue(1)
        into.enqueue(2)  # counts the first, uncommitted, in the same transaction
        with pytest.raises(offload.QueueFull) as refused:
            into.enqueue(3)
        assert refused.value.depth == 2
        conn.commit()
    assert waiting(db_url) == 2
    with caller_connection(db_url) as conn:
        with pytest.raises(offload.QueueFull):
            job.options(queue="q", conn=conn).enqueue(4)
        conn.rollback()
    assert stored(db_url) == 2


@pytest.mark.parametrize("shape", ["one", "keyed", "many", "many keyed", "transactional"])
def test_a_policy_set_at_run_time_binds_a_producer_whose_cache_is_stale(
    app: offload.App, job: Task, db_url: str, shape: str
) -> None:
    into = job.options(queue="q")
    into.enqueue(0)  # the producer has read the policies: "q" has none
    assert "q" not in app.backend.admission._queues  # type: ignore[attr-defined]
    admin = offload.App(db_url)
    try:
        admin.backend.queues.set("q", QueuePolicy(max_depth=1).check())
    finally:
        admin.close()
    assert "q" not in app.backend.admission._queues  # type: ignore[attr-defined]
    with pytest.raises(offload.QueueFull):
        if shape == "one":
            into.enqueue(1)
        elif shape == "keyed":
            job.options(queue="q", idempotency_key="new").enqueue(1)
        elif shape == "many":
            into.enqueue_many([(1,), (2,)])
        elif shape == "transactional":
            with caller_connection(db_url) as conn:
                job.options(queue="q", conn=conn).enqueue(1)
        else:
            keyed = [new_job("job", "q", [i], idempotency_key=f"k{i}") for i in (1, 2)]
            insert_jobs(app.backend, keyed)
    assert stored(db_url) == 1


def test_admit_depth_refuses_low_priorities_and_admits_high_ones_up_to_max_depth(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("q", max_depth=4, admit_depth=2, admit_priority=5)
    low, high = job.options(queue="q"), job.options(queue="q", priority=5)
    low.enqueue(1)
    low.enqueue(2)
    with pytest.raises(offload.Overloaded) as refused:
        low.enqueue(3)
    assert refused.value.reason == "2 jobs waiting, admit_depth 2"
    assert refused.value.queue == "q" and refused.value.retry_after > 0
    high.enqueue(3)
    high.enqueue(4)
    with pytest.raises(offload.QueueFull):
        high.enqueue(5)
    assert waiting(db_url) == 4


def test_max_wait_refuses_low_priorities_while_the_oldest_job_is_late(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("q", max_wait=30.0)
    app.ready()
    job.options(queue="q", at=app.backend.now() - timedelta(seconds=100)).enqueue(1)
    with pytest.raises(offload.Overloaded) as refused:
        job.options(queue="q").enqueue(2)
    reason = refused.value.reason
    assert reason.startswith("oldest job waiting ") and reason.endswith(" s, max_wait 30 s")
    assert 60.0 >= refused.value.retry_after >= 1.0
    job.options(queue="q", priority=1).enqueue(3)  # admit_priority defaults to 1
    assert stored(db_url) == 2


def test_overload_shed_stores_low_priorities_shed_and_says_so_on_the_handle(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("q", max_depth=10, admit_depth=1, overload="shed", shed_depth=8, shed_priority=1)
    into = job.options(queue="q")
    kept = into.enqueue(1)
    shed = into.enqueue(2)
    batch = into.enqueue_many([(3,), (4,)])
    assert kept.status() is JobState.AVAILABLE
    assert shed.status() is JobState.SHED
    assert [h.status() for h in batch] == [JobState.SHED, JobState.SHED]
    assert job.options(queue="q", priority=1).enqueue(5).status() is JobState.AVAILABLE
    assert waiting(db_url) == 2


def test_shed_depth_sheds_new_jobs_below_shed_priority(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("q", shed_depth=2, shed_priority=3)
    into = job.options(queue="q", priority=2)
    assert [into.enqueue(i).status() for i in range(3)] == [
        JobState.AVAILABLE,
        JobState.AVAILABLE,
        JobState.SHED,
    ]
    assert job.options(queue="q", priority=3).enqueue(9).status() is JobState.AVAILABLE
    assert waiting(db_url) == 3


def test_retry_after_shrinks_as_the_measured_drain_rate_grows(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("q", max_depth=1)
    job.options(queue="q").enqueue(0)
    now = app.backend.now()
    workers = [WorkerInfo(f"h:{i}:w", "h", i, ["q"], 1, now, now) for i in (1, 2)]
    for info in workers:
        app.backend.workers.register(info)

    def retry_after(rate: float) -> float:
        for info in workers:  # two live workers: the queue's rate is their sum
            app.backend.workers.heartbeat(info.id, {"q": rate / 2, "other": 50.0})
        with pytest.raises(offload.QueueFull) as refused:
            job.options(queue="q").enqueue_many([(1,), (2,), (3,), (4,)])
        return refused.value.retry_after

    assert retry_after(0.05) == RETRY_AFTER_CEILING  # 4 over / 0.05 per s: clamped to 60
    assert retry_after(0.2) == pytest.approx(20.0)
    assert retry_after(1.0) == pytest.approx(4.0)
    assert retry_after(100.0) == 1.0  # the floor
    assert retry_after(1.0) == pytest.approx(4.0)
    hour_ago = "heartbeat_at - 3600" if is_sqlite(db_url) else "heartbeat_at - interval '1 hour'"
    RawDB(db_url).execute(f"UPDATE offload_workers SET heartbeat_at = {hour_ago} WHERE pid = 2")
    app.backend.workers.heartbeat(workers[0].id)  # None keeps its stored rate, 0.5
    with pytest.raises(offload.QueueFull) as refused:
        job.options(queue="q").enqueue_many([(1,), (2,), (3,), (4,)])
    assert refused.value.retry_after == pytest.approx(8.0)  # the lost worker counts no more


def test_queues_without_an_admission_policy_are_unaffected(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("q", max_depth=1)
    app.queue("ordered", aging=5.0, concurrency=3)  # a policy, but none that admits
    job.options(queue="q").enqueue(0)
    for queue in ("default", "ordered"):
        into = job.options(queue=queue)
        assert len(into.enqueue_many([(i,) for i in range(50)])) == 50
        into.enqueue(1)
        first = job.options(queue=queue, idempotency_key=f"k-{queue}").enqueue(1)
        assert job.options(queue=queue, idempotency_key=f"k-{queue}").enqueue(1) == first
    assert stored(db_url) == 1 + 2 * 52


@pytest.mark.parametrize(
    ("bounds", "words"),
    [
        ({"max_depth": 0}, "max_depth must be an int >= 1, got 0"),
        ({"max_depth": -5}, "max_depth must be an int >= 1, got -5"),
        ({"admit_depth": 0}, "admit_depth must be an int >= 1, got 0"),
        ({"shed_depth": -1, "shed_priority": 0}, "shed_depth must be an int >= 1, got -1"),
        ({"max_wait": 0}, "max_wait must be > 0"),
        ({"max_wait": -1.5}, "got -1.5"),
        ({"max_depth": 10, "admit_depth": 11}, "admit_depth=11 is above max_depth=10"),
        (
            {"max_depth": 10, "shed_depth": 12, "shed_priority": 0},
            "shed_depth=12 is above max_depth=10",
        ),
    ],
)
def test_bad_bounds_are_refused_naming_the_value_and_store_nothing(
    app: offload.App, db_url: str, bounds: dict[str, Any], words: str
) -> None:
    app.ready()
    with pytest.raises(ConfigurationError, match=words.replace("(", r"\(").replace(".", r"\.")):
        app.queue("q", **bounds)
    assert app.queues == {}
    assert RawDB(db_url).scalar("SELECT count(*) FROM offload_queues") == 0


def test_a_cron_tick_into_a_full_queue_is_not_recorded_and_fires_once_there_is_room(
    app: offload.App, job: Task, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A pass that finds the queue full records nothing (no tick, no job); the next pass
    fires the ticks due by then, the missed one too (the schedule's misfire policy)."""
    app.queue("q", max_depth=2)

    @app.task(name="beat", queue="q")
    def beat() -> None:
        return None

    app.schedule(beat, "* * * * * *", name="beat")
    job.options(queue="q").enqueue_many([(0,), (1,)])
    start = app.backend.now().replace(microsecond=0)
    clock = _Clock(start + timedelta(seconds=1, milliseconds=10))
    scheduler = app.scheduler(clock=clock)
    app.backend.schedules.sync(list(app.schedules.values()))
    with caplog.at_level(logging.WARNING, logger="offload"):
        scheduler.tick()
    assert scheduler.fired == 0
    assert "schedule beat: tick not fired" in caplog.text and "is full" in caplog.text
    assert RawDB(db_url).scalar("SELECT count(*) FROM offload_cron_ticks") == 0
    app.backend.claims.claim(ClaimParams("w", "q", 2, 30.0))  # room for two
    clock.now += timedelta(seconds=1)
    scheduler.tick()
    assert scheduler.fired == 2
    assert RawDB(db_url).scalar("SELECT count(*) FROM offload_cron_ticks") == 2
    assert waiting(db_url) == 2


class _Clock:
    def __init__(self, now: Any) -> None:
        self.now = now

    def __call__(self) -> Any:
        return self.now
