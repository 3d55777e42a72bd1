"""Group commit (issue 20 item 1), on both backends: concurrent enqueues of one process share
commits, each caller still gets its own outcome, and an insert refused inside a group is
undone alone while its neighbours are stored.

Threads of one process, and coroutines of one event loop, are combined on both backends;
on PostgreSQL, inserts that take locks (keys, an admission policy) always run alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

import offload
from offload.backends.params import Inserted, JobInsertParams
from offload.core.job import JobSpec, Payload
from tests.conformance.helpers import RawDB

Task = offload.Task[..., Any]


@pytest.fixture
def job(app: offload.App) -> Task:
    @app.task(name="job")
    def job(n: int = 0) -> int:
        return n

    return job


def params(queue: str, n: int, **spec: Any) -> JobInsertParams:
    return JobInsertParams(JobSpec(task="job", queue=queue, **spec), [Payload(f"[{n}]", "{}")])


def stored_args(app: offload.App) -> list[Any]:
    """The first argument of every stored job, oldest first."""
    return [j.args[0] for j in reversed(app.jobs(limit=1000))]


def test_a_group_keeps_the_inserts_around_one_refused_alone(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("full", max_depth=1)
    job.options(queue="full").enqueue(0)  # the bounded queue is full from here on
    outcomes = app.backend.jobs.insert_group(
        [params("a", 1), params("full", 2), params("b", 3), params("full", 4), params("c", 5)]
    )
    assert [type(o).__name__ for o in outcomes] == [
        "Inserted",
        "QueueFull",
        "Inserted",
        "QueueFull",
        "Inserted",
    ]
    ids = [o.ids[0] for o in outcomes if isinstance(o, Inserted)]
    assert len(set(ids)) == 3
    assert stored_args(app) == [0, 1, 3, 5]
    for job_id, n in zip(ids, (1, 3, 5), strict=True):
        assert app.job(job_id).job().args == [n]


def test_an_empty_insert_in_a_group_stores_nothing_and_says_so(
    app: offload.App, job: Task, db_url: str
) -> None:
    empty = JobInsertParams(JobSpec(task="job", queue="a"), [])
    outcomes = app.backend.jobs.insert_group([empty, params("a", 1)])
    assert outcomes[0] == Inserted([])
    assert stored_args(app) == [1]


def run_threads(n: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a producer thread never returned"


def test_concurrent_threads_each_get_their_own_stored_job(
    app: offload.App, job: Task, db_url: str
) -> None:
    ids: list[int] = []
    lock = threading.Lock()

    def produce(k: int) -> None:
        for i in range(25):
            handle = job.enqueue(k * 1000 + i)
            with lock:
                ids.append(handle.id)

    run_threads(32, produce)
    assert len(ids) == len(set(ids)) == 800
    assert RawDB(db_url).count_jobs() == 800
    assert set(stored_args(app)) == {k * 1000 + i for k in range(32) for i in range(25)}


def test_concurrent_threads_past_a_bound_are_refused_one_by_one(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("q", max_depth=10)
    into = job.options(queue="q")
    kept: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def produce(k: int) -> None:
        for i in range(5):
            try:
                into.enqueue(k * 10 + i)
            except offload.QueueFull:
                with lock:
                    refused.append(k * 10 + i)
            else:
                with lock:
                    kept.append(k * 10 + i)

    run_threads(16, produce)
    assert len(kept) == 10 and len(refused) == 70
    assert sorted(stored_args(app)) == sorted(kept)


def test_concurrent_coroutines_each_get_their_own_stored_job_or_error(
    app: offload.App, job: Task, db_url: str
) -> None:
    app.queue("q", max_depth=20)
    into = job.options(queue="q")

    async def produce() -> list[Any]:
        calls = [job.enqueue_async(n) for n in range(200)]
        calls += [into.enqueue_async(1000 + n) for n in range(50)]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(produce())
    handles = [o for o in outcomes[:200] if isinstance(o, offload.JobHandle)]
    assert len(handles) == 200
    assert len({h.id for h in handles}) == 200
    bounded = outcomes[200:]
    assert sum(isinstance(o, offload.JobHandle) for o in bounded) == 20
    assert sum(isinstance(o, offload.QueueFull) for o in bounded) == 30
    assert RawDB(db_url).count_jobs() == 220
    for n, handle in enumerate(handles[:20]):
        assert handle.job().args == [n]


def test_a_coroutine_whose_arguments_the_task_cannot_take_fails_alone(
    app: offload.App, job: Task, db_url: str
) -> None:
    async def produce() -> list[Any]:
        calls = [job.enqueue_async(n) for n in range(10)]
        calls.insert(5, job.enqueue_async(1, 2, 3))
        calls.insert(7, job.enqueue_async({1, 2}))  # not JSON
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(produce())
    errors = [type(o).__name__ for o in outcomes if isinstance(o, Exception)]
    assert errors == ["ArgumentsMismatch", "SerializationError"]
    assert RawDB(db_url).count_jobs() == 10


def test_a_lone_sqlite_caller_commits_once_per_enqueue_without_a_savepoint(
    sqlite_url: str,
) -> None:
    """On SQLite, whose statements a trace callback can count."""
    app = offload.App(sqlite_url)
    job = app.task(name="job")(lambda n: n)
    job.enqueue(0)  # connection open, schema checked
    statements: list[str] = []
    db = app.backend._conn()  # type: ignore[attr-defined]
    db.set_trace_callback(statements.append)
    try:
        for n in range(5):
            job.enqueue(n)
        db.set_trace_callback(None)
    finally:
        app.close()
    commits = [s for s in statements if s.startswith("COMMIT")]
    assert len(commits) == 5
    assert not [s for s in statements if "SAVEPOINT" in s]


def test_a_sqlite_group_of_one_spec_is_one_insert_and_one_commit_without_a_savepoint(
    sqlite_url: str,
) -> None:
    """Its refusal (a queue policy found meanwhile) comes before it writes anything:
    nothing for a savepoint to undo (see the policy test below)."""
    app = offload.App(sqlite_url)
    job = app.task(name="job")(lambda n: n)
    job.enqueue(0)  # connection open, schema checked, no policy on queue a
    statements: list[str] = []
    db = app.backend._conn()  # type: ignore[attr-defined]
    db.set_trace_callback(statements.append)
    try:
        outcomes = app.backend.jobs.insert_group([params("a", n) for n in range(1, 6)])
        db.set_trace_callback(None)
    finally:
        app.close()
    assert [len(o.ids) for o in outcomes if isinstance(o, Inserted)] == [1] * 5
    # BEGIN, the one insert (traced again for each row its trigger writes for), COMMIT: the
    # ids it numbered are read from the cursor, with no statement of their own
    distinct = list(dict.fromkeys(statements))
    assert len(distinct) == 3, distinct
    assert distinct[0] == "BEGIN IMMEDIATE" and distinct[-1] == "COMMIT"
    assert "INSERT INTO offload_jobs" in distinct[1]
    assert not [s for s in statements if "SAVEPOINT" in s]


def payload(n: int) -> Payload:
    return Payload(f"[{n}]", "{}")


def test_a_run_of_one_spec_is_stored_in_one_statement_each_caller_getting_its_ids(
    app: offload.App, job: Task
) -> None:
    spec = JobSpec(task="job", queue="a")
    group = [
        JobInsertParams(spec, [payload(1)]),
        JobInsertParams(spec, [payload(2), payload(3)]),
        JobInsertParams(spec, []),
        JobInsertParams(spec, [payload(4)]),
        params("b", 5),  # another spec ends the run
        JobInsertParams(spec, [payload(6)]),
    ]
    outcomes = app.backend.jobs.insert_group(group)
    assert all(isinstance(o, Inserted) for o in outcomes)
    shown = [[app.job(i).job().args[0] for i in o.ids] for o in outcomes if isinstance(o, Inserted)]
    assert shown == [[1], [2, 3], [], [4], [5], [6]]


def test_a_merged_run_refused_by_a_policy_it_did_not_know_goes_caller_by_caller(
    app: offload.App, job: Task, db_url: str
) -> None:
    """This producer has seen no policy on queue q; another sets max_depth 3 meanwhile.
    The merged insert is stopped by the database's guard, and each caller then gets its
    own outcome: room for 2 more, so 2 stored and 3 refused."""
    job.options(queue="q").enqueue(0)  # this producer now knows q has no policy
    other = offload.App(db_url)
    try:
        other.set_queue("q", max_depth=3)
    finally:
        other.close()
    outcomes = app.backend.jobs.insert_group([params("q", n) for n in range(1, 6)])
    assert [type(o).__name__ for o in outcomes] == ["Inserted"] * 2 + ["QueueFull"] * 3
    assert stored_args(app) == [0, 1, 2]
