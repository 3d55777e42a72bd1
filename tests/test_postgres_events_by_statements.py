"""PostgreSQL (schema 21): the statements that store or change jobs write their events
themselves, with no trigger. The rows are those the triggers of schemas 9-20 wrote: the test
puts them back, writing into a table of their own, runs every kind of change, and compares.
(Where one transaction writes events of two kinds, as a rescue that requeues some jobs and
ends others, each kind's go in id order, one kind after the other, as on SQLite.)
Event listeners are woken by a statement that wrote events, not by one that changed nothing,
nor in a transaction whose wake-ups follow its commit (schema 20)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import psycopg
import pytest

import offload
from offload.backends.params import (
    ClaimParams,
    FinishParams,
    GroupClaimParams,
    JobFilter,
    JobRetryManyParams,
    Outcome,
    ProgressReport,
    ReleaseParams,
    RescueParams,
    SweepReadmitParams,
    SweepTakeParams,
    WorkflowInsertParams,
)
from offload.backends.sql.jobs import _spec_params
from offload.backends.sql.queries import migration_files
from offload.core.flow import QueuePolicy
from offload.core.job import Job, JobSpec, Payload
from offload.core.states import JobState
from offload.core.workflow import Edge, Node, Takes
from tests.conformance.helpers import claim_one, error_json, expire_lease, insert, lease_of

#: The columns an event is compared by (its position aside: the two tables number apart).
COLUMNS = "tx::text, at, kind, job_id, task, queue, channel, state, attempt, data::text"


@pytest.fixture
def sql(pg_url: str) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:

        def run(statement: str, *values: Any) -> list[tuple[Any, ...]]:
            cur = conn.execute(statement.encode(), values or None)
            return cur.fetchall() if cur.description else []

        yield run


def _old_triggers() -> str:
    """Schema 20's event triggers (its functions, schema 9's triggers), writing into
    `shadow_events` instead."""
    text = dict(migration_files("offload.backends.postgres"))[20]
    functions = text[text.index("CREATE OR REPLACE FUNCTION offload_events_inserted()") :]
    return (
        functions.replace("offload_events_", "shadow_events_").replace(
            "INSERT INTO offload_events", "INSERT INTO shadow_events"
        )
        + "\nCREATE TRIGGER shadow_insert AFTER INSERT ON offload_jobs"
        " REFERENCING NEW TABLE AS new_jobs"
        " FOR EACH STATEMENT EXECUTE FUNCTION shadow_events_inserted();"
        "\nCREATE TRIGGER shadow_update AFTER UPDATE ON offload_jobs"
        " REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs"
        " FOR EACH STATEMENT EXECUTE FUNCTION shadow_events_updated();"
    )


def test_the_event_triggers_and_their_functions_are_gone(
    pg_app: offload.App, sql: Callable[..., list[tuple[Any, ...]]]
) -> None:
    triggers = sql(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'offload_jobs'::regclass"
        " AND NOT tgisinternal"
    )
    assert triggers == []
    functions = "SELECT to_regproc('offload_events_updated'), to_regproc('offload_events_inserted')"
    assert sql(functions) == [(None, None)]


def _finish(backend: Any, jobs: list[Job], *states: JobState) -> None:
    long = "x" * 600  # cut to 500 in the event
    outcomes = [
        Outcome(job.id, job.attempt, state, result="1", error=error_json(message=f"{state}{long}"))
        for job, state in zip(jobs, states, strict=True)
    ]
    assert backend.claims.finish(FinishParams("w1", outcomes)) == []


def _every_change(app: offload.App) -> None:
    """Every kind of change of a job's state, through the calls offload makes."""
    backend: Any = app.backend
    claims = backend.claims
    insert(backend, 5, task="t", channel="c")
    took = claims.claim(ClaimParams("w1", "default", 4, 30.0))
    job = took[0]
    for fraction in (0.5, 0.5, 0.75):  # the second report changes nothing
        claims.progress("w1", [ProgressReport(job.id, job.attempt, fraction, "m")])
    _finish(backend, took, JobState.SUCCEEDED, JobState.RETRYING, JobState.DEAD, JobState.CANCELLED)
    released = claim_one(backend)
    assert claims.release(ReleaseParams("w1", [lease_of(released)])) == 1
    lost = claims.claim(ClaimParams("w1", "default", 2, 0.2))
    expire_lease(backend, lost[0])
    assert sorted(claims.rescue(RescueParams())) == sorted(job.id for job in lost)
    # Admin changes: one job each, then in bulk; a replace key cancels the job it replaces.
    (queued,) = insert(backend, 1, task="t", delay=60.0)
    app.cancel(queued)
    app.retry(queued)
    backend.jobs.cancel_many(JobFilter(queue="default"))
    backend.jobs.retry_many(JobRetryManyParams(JobFilter(queue="default"), {}))
    insert(backend, 1, task="t", replace_key="r", delay=60.0)
    insert(backend, 1, task="t", replace_key="r", delay=60.0)
    # The limited claim (a queue with a concurrency limit) and a batch task's group claim.
    backend.queues.set("lim", QueuePolicy(concurrency=5).check())
    insert(backend, 3, task="t", queue="lim")
    for _ in range(2):  # the first one's probe finds the limit; the second is limited
        claims.take(ClaimParams("w1", "lim", 1, 30.0))
    insert(backend, 3, task="batch", group_key='"g"', queue="b")
    grouped = claims.take_group(GroupClaimParams("w1", "b", "batch", 3, 0.0, 30.0))
    assert len(grouped.jobs) == 3
    # Shedding, re-admission, and a sweep hook's take and untake.
    insert(backend, 5, task="t", queue="s", priority=0)
    insert(backend, 2, task="hooked", queue="s", priority=0)
    backend.queues.set("s", QueuePolicy(shed_priority=1, shed_depth=3, resume_depth=2).check())
    assert backend.sweep.shed("s")
    taken = backend.sweep.take(SweepTakeParams("sweeper", "s", "hooked", 1, 30.0))
    assert backend.sweep.untake(ReleaseParams("sweeper", [lease_of(taken[0])])) == 1
    assert backend.sweep.readmit(SweepReadmitParams("s", ("hooked",)))
    # Workflows (a queue each): a parent's end releases its child, or fails both of its
    # children; a workflow cancelled.
    edges = [Edge(1, parent=0), Edge(2, parent=0)]
    for queue, size, end in (("w1", 2, JobState.SUCCEEDED), ("w2", 3, JobState.DEAD)):
        stored = backend.workflows.insert(_workflow(queue, size, edges))
        parent = claim_one(backend, queue=queue)
        assert parent.id == stored.ids[0]
        _finish(backend, [parent], end)
    cancelled = backend.workflows.insert(_workflow("w3", 2, edges)).workflow_id
    assert cancelled is not None
    assert backend.workflows.cancel(cancelled)


def _workflow(queue: str, size: int, edges: list[Edge]) -> WorkflowInsertParams:
    """`size` nodes of task "t" in `queue`, with the first `size - 1` of `edges`."""
    spec = JobSpec(task="t", queue=queue)
    nodes = [
        Node(str(n), spec, Payload(orjson.dumps([n]).decode(), "{}"), Takes.NOTHING)
        for n in range(size)
    ]
    return WorkflowInsertParams("workflow", nodes, edges[: size - 1])


def test_every_change_writes_the_events_the_triggers_wrote(
    pg_app: offload.App, sql: Callable[..., list[tuple[Any, ...]]]
) -> None:
    sql("CREATE TABLE shadow_events (LIKE offload_events INCLUDING DEFAULTS INCLUDING IDENTITY)")
    sql(_old_triggers())
    _every_change(pg_app)
    written = sql(f"SELECT {COLUMNS} FROM offload_events ORDER BY tx, position")
    wanted = sql(f"SELECT {COLUMNS} FROM shadow_events ORDER BY tx, position")
    assert written == wanted
    kinds = {row[2] for row in written}
    assert kinds == {
        "enqueued", "started", "progress", "succeeded", "retrying", "dead", "cancelled",
        "requeued", "shed", "released",
    }  # fmt: skip
    errors = [orjson.loads(row[9])["error"] for row in written if row[2] in ("retrying", "dead")]
    cut = [error for error in errors if error.endswith("x")]  # the outcomes' long errors
    assert len(cut) == 3 and {len(error) for error in cut} == {500}


@pytest.fixture
def heard(pg_url: str) -> Iterator[Callable[[], int]]:
    """A session LISTENing for event wake-ups; calling it counts those that arrived."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("LISTEN offload_events")

        def heard() -> int:
            return len(list(conn.notifies(timeout=0.5)))

        yield heard


def test_a_statement_that_wrote_events_wakes_listeners_and_one_that_changed_nothing_not(
    pg_app: offload.App, heard: Callable[[], int]
) -> None:
    backend: Any = pg_app.backend
    claims = backend.claims
    assert claims.claim(ClaimParams("w1", "default", 2, 30.0)) == []
    assert claims.finish(FinishParams("w1", [Outcome(1, 1, JobState.SUCCEEDED)])) == [1]
    assert heard() == 0
    insert(backend, 1, task="t")
    assert heard() == 1
    job = claim_one(backend)
    assert heard() == 1
    claims.progress("w1", [ProgressReport(job.id, job.attempt, 0.5, None)])
    assert heard() == 1
    claims.progress("w1", [ProgressReport(job.id, job.attempt, 0.5, None)])  # no change
    assert heard() == 0
    _finish(backend, [job], JobState.SUCCEEDED)
    assert heard() == 1


def test_an_insert_its_guard_stopped_stores_nothing_and_wakes_no_listener(
    pg_app: offload.App,
    pg_url: str,
    heard: Callable[[], int],
    sql: Callable[..., list[tuple[Any, ...]]],
) -> None:
    """The plain inserts carry a guard (`{unbounded}`) for a queue whose policy this
    process's cache missed: stopped by it, neither insert may NOTIFY event listeners."""
    backend: Any = pg_app.backend
    backend.admission.applies("q")  # this process's cache: no policy for q
    other = offload.App(pg_url)
    other.backend.queues.set("q", QueuePolicy(max_depth=1000).check())
    other.close()
    heard()
    values = _spec_params(JobSpec(task="t", queue="q"))
    values.update(admitted=False, shed=False, defer=False)
    for name, more in (
        ("insert_one", Payload("[1]", "{}")._asdict()),
        ("insert_many", {"payloads": orjson.dumps(["[1]", "[2]"]).decode(), "wide": False}),
    ):
        with backend.tx() as cur:
            cur.execute(backend.q["jobs"][name], {**values, **more})
            assert cur.fetchall() == [], name
        assert heard() == 0, name
    assert sql("SELECT count(*) FROM offload_jobs") == [(0,)]


def test_no_wake_up_in_a_transaction_that_sends_its_wake_ups_after_its_commit(
    pg_app: offload.App, heard: Callable[[], int]
) -> None:
    backend: Any = pg_app.backend
    (job_id,) = insert(backend, 1, task="t", delay=60.0)
    heard()
    for defer, woken in ((True, 0), (False, 1)):
        with backend.tx() as cur:
            if defer:
                cur.execute("SELECT set_config('offload.defer_wake', 'on', true)")
            cur.execute("UPDATE offload_jobs SET state = 'cancelled' WHERE id = %s", (job_id,))
            backend.events.written(cur, [job_id])
        assert heard() == woken
