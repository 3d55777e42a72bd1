"""Rate and concurrency limits and paused queues, enforced by the claim (both backends)."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

import offload
from offload.backends.base import Backend
from offload.backends.params import ClaimParams, FinishParams, Outcome, RescueParams
from offload.backends.sql.claims import WINDOW, SqlClaims
from offload.core.errors import ConfigurationError, ValidationError
from offload.core.job import Job
from offload.core.states import JobState
from tests.conformance.helpers import RawDB, insert, is_sqlite, sqlite_path

Enqueue = Callable[..., Any]


def take(backend: Backend, n: int = 100, queue: str = "default", **kw: Any) -> list[Job]:
    return backend.claims.claim(ClaimParams(kw.get("worker", "w1"), queue, n, 30.0, kw.get("now")))


def succeed(backend: Backend, job: Job, now: datetime | None = None) -> None:
    outcome = Outcome(job.id, job.attempt, JobState.SUCCEEDED, result="1")
    assert backend.claims.finish(FinishParams(job.worker or "w1", [outcome], now)) == []


def keys(jobs: list[Job]) -> Counter[Any]:
    return Counter(job.args[0] for job in jobs)


def whole_second(backend: Backend, ahead: float = 5.0) -> datetime:
    """A database time a little ahead, on a whole second, so that window edges are exact."""
    return (backend.now() + timedelta(seconds=ahead)).replace(microsecond=0)


# -- paused queues ----------------------------------------------------------------------


def test_a_paused_queue_claims_nothing_and_resumes(backend: Backend) -> None:
    ids = insert(backend, 3, queue="mail")
    backend.queues.pause("mail", True)
    assert take(backend, queue="mail") == []
    assert take(backend, queue="mail") == []  # with the view now saying "limited" too
    for job_id in ids:
        job = backend.jobs.get(job_id)
        assert (job.state, job.attempt) == (JobState.AVAILABLE, 0)
    backend.queues.pause("mail", False)
    assert sorted(job.id for job in take(backend, queue="mail")) == ids


def test_pausing_one_queue_leaves_the_others_alone(backend: Backend) -> None:
    insert(backend, 2, queue="mail")
    other = insert(backend, 2, queue="other")
    backend.queues.pause("mail", True)
    assert sorted(job.id for job in take(backend, queue="other")) == other


# -- concurrency ------------------------------------------------------------------------


def test_queue_concurrency_counts_running_jobs_of_the_queue(
    app: offload.App, backend: Backend
) -> None:
    app.queue("mail", concurrency=2)
    app.ready()
    insert(backend, 5, queue="mail")
    first = take(backend, queue="mail")
    assert len(first) == 2
    assert take(backend, queue="mail", worker="w2") == []
    succeed(backend, first[0])
    assert len(take(backend, queue="mail", worker="w2")) == 1
    assert take(backend, queue="mail") == []


def test_task_concurrency_per_key(app: offload.App, backend: Backend) -> None:
    @app.task(name="per_key", concurrency=1, limit_key=lambda customer: customer)
    def per_key(customer: str) -> None: ...

    for customer in "aabbbc":
        per_key.enqueue(customer)
    first = take(backend)
    assert keys(first) == {"a": 1, "b": 1, "c": 1}
    assert take(backend, worker="w2") == []
    succeed(backend, next(job for job in first if job.args == ["b"]))
    assert keys(take(backend, worker="w2")) == {"b": 1}


def test_task_concurrency_as_a_whole_and_unlimited_jobs_beside_it(
    app: offload.App, backend: Backend
) -> None:
    @app.task(name="whole", concurrency=2)
    def whole(n: int) -> None: ...

    @app.task(name="free")
    def free(n: int) -> None: ...

    whole.enqueue_many([(i,) for i in range(5)])
    free.enqueue_many([(i,) for i in range(3)])
    claimed = take(backend)
    assert Counter(job.task for job in claimed) == {"whole": 2, "free": 3}
    assert take(backend) == []


def test_held_back_jobs_are_not_attempted_and_stay_available(
    app: offload.App, backend: Backend
) -> None:
    @app.task(name="one", concurrency=1)
    def one(n: int) -> None: ...

    ids = [one.enqueue(i).id for i in range(4)]
    (running,) = take(backend)
    for _ in range(3):
        assert take(backend) == []
    for job_id in ids:
        if job_id != running.id:
            job = backend.jobs.get(job_id)
            assert (job.state, job.attempt, job.errors) == (JobState.AVAILABLE, 0, [])


def test_no_head_of_line_blocking_behind_a_saturated_key(
    app: offload.App, backend: Backend
) -> None:
    @app.task(name="keyed", concurrency=1, limit_key=lambda key, n: key)
    def keyed(key: str, n: int) -> None: ...

    keyed.enqueue_many([("busy", i) for i in range(300)])
    behind = keyed.enqueue("other", 0)
    first = take(backend, 5)
    assert keys(first) == {"busy": 1, "other": 1}
    assert behind.id in {job.id for job in first}
    assert take(backend, 5) == []


def test_jobs_past_the_window_wait_for_those_ahead(app: offload.App, backend: Backend) -> None:
    """The stated bound: a claim reads WINDOW due jobs at most."""

    @app.task(name="keyed", concurrency=1, limit_key=lambda key, n: key)
    def keyed(key: str, n: int) -> None: ...

    keyed.enqueue_many([("busy", i) for i in range(WINDOW + 1)])  # one starts: WINDOW wait
    keyed.enqueue("late", 0)
    assert keys(take(backend, 5)) == {"busy": 1}


def test_a_rescued_lease_gives_its_slot_back(app: offload.App, backend: Backend) -> None:
    @app.task(name="one", concurrency=1, limit_key=lambda key: key)
    def one(key: str) -> None: ...

    one.enqueue("a")
    one.enqueue("a")
    now = whole_second(backend)
    (held,) = take(backend, now=now)
    assert take(backend, now=now + timedelta(seconds=60)) == []
    rescued = backend.claims.rescue(RescueParams(now + timedelta(seconds=31)))
    assert rescued == [held.id]
    again = take(backend, now=now + timedelta(seconds=32))
    assert len(again) == 1
    assert take(backend, now=now + timedelta(seconds=32)) == []


def test_concurrent_claimers_never_exceed_a_limit(app: offload.App, db_url: str) -> None:
    """Eight processes' worth of claimers (own connections) at once: three slots, three
    jobs. On PostgreSQL the advisory lock serialises them; SQLite's writes are serial."""

    @app.task(name="three", concurrency=3)
    def three(n: int) -> None: ...

    three.enqueue_many([(i,) for i in range(40)])
    apps = [offload.App(db_url) for _ in range(8)]
    for other in apps:
        other.backend.now()  # connected before the race
    barrier = threading.Barrier(len(apps))
    claimed: list[Job] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        barrier.wait()
        jobs = take(apps[n].backend, 5, worker=f"w{n}")
        with lock:
            claimed.extend(jobs)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(len(apps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in apps:
        other.close()
    assert len(claimed) == 3
    assert app.backend.jobs.counts()["default"]["running"] == 3


# -- rates ------------------------------------------------------------------------------


def test_a_rate_per_key_has_exact_window_edges(app: offload.App, backend: Backend) -> None:
    @app.task(name="api", rate_limit=(2, 10), limit_key=lambda key, n: key)
    def api(key: str, n: int) -> None: ...

    api.enqueue_many([("a", i) for i in range(6)] + [("b", 0)])
    t0 = whole_second(backend)
    first = take(backend, now=t0)
    assert keys(first) == {"a": 2, "b": 1}
    for job in first:
        succeed(backend, job, t0)  # a finished job still counts in its window
    claimed = backend.claims.take(ClaimParams("w1", "default", 10, 30.0, t0 + timedelta(seconds=4)))
    assert claimed.jobs == []
    assert claimed.wait == pytest.approx(6.0)
    almost = t0 + timedelta(seconds=10) - timedelta(microseconds=1)
    assert take(backend, now=almost) == []
    assert keys(take(backend, now=t0 + timedelta(seconds=10))) == {"a": 2}
    assert take(backend, now=t0 + timedelta(seconds=15)) == []
    assert keys(take(backend, now=t0 + timedelta(seconds=20))) == {"a": 2}


def test_a_queue_rate_counts_every_job_of_the_queue(app: offload.App, backend: Backend) -> None:
    app.queue("mail", rate_limit="3/m")
    app.ready()
    insert(backend, 5, queue="mail")
    t0 = whole_second(backend)
    assert len(take(backend, queue="mail", now=t0)) == 3
    claimed = backend.claims.take(ClaimParams("w1", "mail", 10, 30.0, t0 + timedelta(seconds=1)))
    assert claimed.jobs == []
    assert claimed.wait == pytest.approx(59.0)
    assert len(take(backend, queue="mail", now=t0 + timedelta(seconds=60))) == 2


def test_old_starts_are_pruned(app: offload.App, backend: Backend, db_url: str) -> None:
    @app.task(name="api", rate_limit="1/s")
    def api(n: int) -> None: ...

    api.enqueue_many([(i,) for i in range(5)])
    t0 = whole_second(backend)
    for step in range(5):
        assert len(take(backend, now=t0 + timedelta(seconds=100 * step))) == 1
    (row,) = RawDB(db_url).query("SELECT count(*) AS n FROM offload_rate_starts")
    assert row["n"] == 1


# -- the per-process view ---------------------------------------------------------------


def test_a_stale_view_of_an_unlimited_queue_never_oversteps(
    app: offload.App, backend: Backend
) -> None:
    claims = backend.claims
    assert isinstance(claims, SqlClaims)
    insert(backend, 3, queue="mail")
    assert len(take(backend, 1, queue="mail")) == 1  # the view: "mail" has no limits
    backend.queues.set("mail", offload.QueuePolicy(concurrency=1))
    claims._view["mail"] = (False, time.monotonic())  # and it is fresh
    assert take(backend, queue="mail") == []
    backend.queues.pause("mail", True)
    assert take(backend, queue="mail") == []


def test_a_stale_limited_view_still_takes_everything_allowed(
    app: offload.App, backend: Backend
) -> None:
    claims = backend.claims
    assert isinstance(claims, SqlClaims)
    ids = insert(backend, 3, queue="mail")
    claims._view["mail"] = (True, time.monotonic())
    assert sorted(job.id for job in take(backend, queue="mail")) == ids


# -- keys at enqueue, and bad input ------------------------------------------------------


def test_limit_keys_are_stored_with_each_job(
    app: offload.App, backend: Backend, db_url: str
) -> None:
    @app.task(name="keyed", concurrency=1, limit_key=lambda n, who="x": f"{who}:{n % 2}")
    def keyed(n: int, who: str = "x") -> None: ...

    @app.task(name="whole", rate_limit="5/s")
    def whole() -> None: ...

    @app.task(name="free")
    def free() -> None: ...

    keyed.enqueue(1, who="ann")
    keyed.enqueue_many([(2,), offload.call(3, who="bo")])
    whole.enqueue()
    free.enqueue()
    app.enqueue("keyed", [4], {"who": "cy"})
    rows = RawDB(db_url).query("SELECT task, limit_key FROM offload_jobs ORDER BY id")
    assert [(r["task"], r["limit_key"]) for r in rows] == [
        ("keyed", "ann:1"),
        ("keyed", "x:0"),
        ("keyed", "bo:1"),
        ("whole", ""),
        ("free", None),
        ("keyed", "cy:0"),
    ]


def _boom(n: int) -> str:
    raise KeyError("no customer")


@pytest.mark.parametrize(
    ("key_fn", "problem"),
    [
        (_boom, "limit_key raised KeyError: \"'no customer'\""),
        (lambda n: n, "limit_key returned 7, not a str"),
        (lambda n: None, "limit_key returned None, not a str"),
        (lambda n: "a\nb", "control character"),
        (lambda n: "x" * 201, "returned 201 characters, more than 200"),
        (lambda n: "bad\udc80", "lone surrogate at index 3"),
    ],
)
def test_a_bad_limit_key_refuses_the_enqueue(
    app: offload.App, stored: None, key_fn: Callable[[int], Any], problem: str
) -> None:
    @app.task(name="keyed", concurrency=1, limit_key=key_fn)
    def keyed(n: int) -> None: ...

    with pytest.raises(ValidationError, match="task 'keyed': ") as single:
        keyed.enqueue(7)
    assert problem in str(single.value)
    assert "nothing was stored" in str(single.value)
    with pytest.raises(ValidationError, match=r"\(call 0\)") as batch:
        keyed.enqueue_many([(7,), (7,)])
    assert problem in str(batch.value)
    with pytest.raises(ValidationError):
        app.enqueue("keyed", [7])


def test_one_bad_key_in_a_batch_stores_none_of_it(app: offload.App, stored: None) -> None:
    @app.task(name="keyed", concurrency=1, limit_key=lambda n: "k" if n < 3 else n)
    def keyed(n: int) -> None: ...

    with pytest.raises(ValidationError, match=r"limit_key returned 3, not a str \(call 3\)"):
        keyed.enqueue_many([(i,) for i in range(5)])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency must be an int >= 1, got 0"),
        ({"concurrency": -2}, "concurrency must be an int >= 1, got -2"),
        ({"concurrency": "2"}, "concurrency must be an int >= 1, got '2'"),
        ({"rate_limit": "lots"}, "rate limit 'lots' does not parse"),
        ({"rate_limit": "0/s"}, "rate count must be an int >= 1, got 0"),
        ({"rate_limit": (5, -1)}, "rate period must be within"),
        ({"limit_key": lambda n: "k"}, "limit_key needs concurrency or rate_limit"),
        ({"limit_key": "customer", "concurrency": 1}, "limit_key must be callable"),
    ],
)
def test_bad_task_limits_are_refused_at_declaration(
    app: offload.App, db_url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:

        @app.task(name="bad", **options)
        def bad(n: int) -> None: ...

    assert message in str(raised.value)
    app.ready()
    assert RawDB(db_url).query("SELECT * FROM offload_task_limits") == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency must be an int >= 1, got 0"),
        ({"rate_limit": "9/fortnight"}, "rate limit '9/fortnight' does not parse"),
        ({"rate_limit": (0, 1.0)}, "rate count must be an int >= 1, got 0"),
    ],
)
def test_bad_queue_limits_are_refused(
    app: offload.App, db_url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        app.queue("mail", **options)
    assert message in str(raised.value)
    app.ready()
    assert RawDB(db_url).query("SELECT * FROM offload_queues") == []


@contextmanager
def claim_lock_held(backend: Backend, db_url: str) -> Iterator[None]:
    """Hold, on a connection of its own, the lock limited claims queue for: on PostgreSQL
    their advisory lock (its key read from the backend's own `limited_begin`), on SQLite the
    write lock (BEGIN IMMEDIATE), which every write takes."""
    if is_sqlite(db_url):
        db = sqlite3.connect(sqlite_path(db_url), isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            yield
            db.execute("COMMIT")
        finally:
            db.close()
        return
    claims = backend.claims
    assert isinstance(claims, SqlClaims)
    lock = re.search(r"pg_advisory_xact_lock\(\d+\)", claims.q["limited_begin"])
    assert lock is not None
    with psycopg.connect(db_url) as conn:  # one transaction, committed on leaving
        conn.execute(f"SELECT {lock.group()}".encode())
        yield


def test_a_claim_that_waited_for_the_lock_stamps_its_starts_after_what_it_counted(
    app: offload.App, backend: Backend, db_url: str
) -> None:
    """The regression check of the limited claim's clock (tests/hosts found it across
    hosts): a limited claim queues for its lock while the job holding the only slot
    finishes; once in, it counts that slot free and starts the next job, which it must stamp
    after that finish and after the lock was let go (not at its transaction's start, before
    both: the two jobs would seem to have run at once under a limit of 1). On PostgreSQL the
    finish commits while the claim waits; on SQLite, whose write lock is also the finish's,
    it commits just before the lock is taken."""

    @app.task(name="single", concurrency=1)
    def single(n: int) -> None: ...

    single.enqueue(1)
    second = single.enqueue(2)
    (first,) = take(backend)
    claimer = offload.App(db_url)
    claimer.backend.now()  # connected before the lock is taken
    sqlite = is_sqlite(db_url)
    if sqlite:
        succeed(backend, first)
    claimed: list[Job] = []
    with claim_lock_held(backend, db_url):
        thread = threading.Thread(target=lambda: claimed.extend(take(claimer.backend)))
        thread.start()
        if sqlite:  # no view of who waits on SQLite's lock: give the claim time to queue
            time.sleep(0.3)
        else:
            raw = RawDB(db_url)
            deadline = time.monotonic() + 10
            while not raw.scalar(
                "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ):
                assert time.monotonic() < deadline, "the claim never queued for the lock"
                time.sleep(0.01)
            succeed(backend, first)  # commits while the claim waits
        time.sleep(0.05)
        released = backend.now()
    thread.join(30)
    claimer.close()
    assert [job.id for job in claimed] == [second.id]
    finished_at = backend.jobs.get(first.id).finished_at
    started_at = backend.jobs.get(second.id).started_at
    assert finished_at is not None and started_at is not None
    assert started_at >= finished_at, (started_at, finished_at)
    assert started_at >= released, (started_at, released)
