"""Jobs that wait for jobs (DESIGN §6): a waiting job is released, failed or cancelled in
the transaction that ends its last parent, once per edge, on every path that ends jobs."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import psycopg
import pytest

import offload
from offload.backends.base import Backend, Listener
from offload.backends.params import (
    ClaimParams,
    FinishParams,
    JobFilter,
    JobRetryParams,
    Outcome,
    ParentsReadParams,
    RescueParams,
    ResultsPageParams,
    WorkflowInsertParams,
    WorkflowListParams,
)
from offload.core.errors import (
    InvalidWorkflow,
    QueueFull,
    UnknownDependency,
    WorkflowNotFound,
)
from offload.core.flow import QueuePolicy
from offload.core.job import Job, JobSpec, Payload
from offload.core.states import JobState
from offload.core.workflow import Edge, Node, OnParentFailure, Takes
from tests.conformance.helpers import (
    SHORT_LEASE,
    RawDB,
    error_json,
    expire_lease,
    insert,
    is_sqlite,
    sqlite_path,
    woken,
)

FAIL, CANCEL, RUN = OnParentFailure.FAIL, OnParentFailure.CANCEL, OnParentFailure.RUN


def node(name: str, queue: str = "default", takes: Takes = Takes.NOTHING, **spec: Any) -> Node:
    """A node of task "t" with its name as its argument."""
    payload = Payload(orjson.dumps([name]).decode(), "{}")
    return Node(name, JobSpec(task="t", queue=queue, **spec), payload, takes)


def store(
    backend: Backend,
    nodes: Sequence[Node],
    edges: Sequence[Edge] = (),
    kind: str | None = "workflow",
    conn: Any = None,
) -> list[int]:
    return backend.workflows.insert(WorkflowInsertParams(kind, nodes, edges, conn=conn)).ids


def chain(n: int) -> tuple[list[Node], list[Edge]]:
    return [node(f"n{i}") for i in range(n)], [Edge(i + 1, parent=i) for i in range(n - 1)]


def state(backend: Backend, job_id: int) -> JobState:
    return backend.jobs.get(job_id).state


def claim(backend: Backend, n: int = 100, queue: str = "default", lease: float = 30.0) -> list[Job]:
    return backend.claims.claim(ClaimParams("w1", queue, n, lease))


def end(backend: Backend, jobs: Sequence[Job], to: JobState, result: Any = None) -> None:
    """Record an outcome `to` for every one of `jobs` in one finish."""
    outcomes = [
        Outcome(j.id, j.attempt, to, result=orjson.dumps(result).decode())
        if to is JobState.SUCCEEDED
        else Outcome(j.id, j.attempt, to, error=error_json())
        for j in jobs
    ]
    assert backend.claims.finish(FinishParams("w1", outcomes)) == []


def pending(db_url: str, job_id: int) -> int:
    return int(RawDB(db_url).scalar("SELECT pending FROM offload_jobs WHERE id = ?", [job_id]))


# -- release ---------------------------------------------------------------------------


def test_a_chain_runs_one_link_at_a_time(backend: Backend) -> None:
    ids = store(backend, *chain(3))
    assert [state(backend, i) for i in ids] == [JobState.AVAILABLE] + [JobState.WAITING] * 2
    for i, job_id in enumerate(ids):
        taken = claim(backend)
        assert [j.id for j in taken] == [job_id]  # the next link only, and at once
        assert taken[0].node == f"n{i}"
        assert taken[0].parents == (1 if i else 0)
        end(backend, taken, JobState.SUCCEEDED, i)
    assert claim(backend) == []
    record = backend.workflows.get(backend.jobs.get(ids[0]).workflow_id or 0)
    assert [n.parents for n in record.nodes] == [[], [ids[0]], [ids[1]]]
    assert all(n.state is JobState.SUCCEEDED for n in record.nodes)


@pytest.mark.parametrize("batched", [True, False])
def test_fan_in_releases_once(backend: Backend, db_url: str, batched: bool) -> None:
    n = 5
    nodes = [node(f"p{i}") for i in range(n)] + [node("child")]
    ids = store(backend, nodes, [Edge(n, parent=i) for i in range(n)])
    child = ids[-1]
    parents = claim(backend)
    assert sorted(j.id for j in parents) == ids[:-1]
    if batched:
        end(backend, parents, JobState.SUCCEEDED)
    else:
        for i, job in enumerate(parents):
            end(backend, [job], JobState.SUCCEEDED)
            if i < n - 1:
                assert state(backend, child) is JobState.WAITING
                assert pending(db_url, child) == n - 1 - i
    assert state(backend, child) is JobState.AVAILABLE
    assert pending(db_url, child) == 0
    released = [e for e in RawDB(db_url).events() if e["job_id"] == child]
    assert [e["kind"] for e in released] == ["enqueued", "released"]


def test_a_delayed_child_is_released_scheduled(backend: Backend) -> None:
    ids = store(backend, [node("a"), node("b", delay=60.0)], [Edge(1, parent=0)])
    end(backend, claim(backend), JobState.SUCCEEDED)
    assert state(backend, ids[1]) is JobState.SCHEDULED


@pytest.mark.parametrize(
    ("rule", "expected"),
    [(FAIL, JobState.DEAD), (CANCEL, JobState.CANCELLED), (RUN, JobState.AVAILABLE)],
)
@pytest.mark.parametrize("how", ["dead", "cancelled", "rescued"])
def test_rules_of_a_parent_ending_badly(
    backend: Backend, db_url: str, rule: OnParentFailure, expected: JobState, how: str
) -> None:
    nodes = [node("parent", max_attempts=1), node("child"), node("grandchild")]
    edges = [Edge(1, parent=0, on_failure=rule), Edge(2, parent=1)]
    parent, child, grandchild = store(backend, nodes, edges)
    if how == "dead":
        end(backend, claim(backend), JobState.DEAD)
    elif how == "cancelled":
        backend.jobs.cancel(parent)
    else:
        expire_lease(backend, claim(backend, lease=SHORT_LEASE)[0])
        assert backend.claims.rescue(RescueParams()) == [parent]
    ended = JobState.CANCELLED if how == "cancelled" else JobState.DEAD
    assert state(backend, parent) is ended
    assert state(backend, child) is expected
    # The child's end reaches its own child by its rule (fail), in the same transaction.
    cascaded = {JobState.DEAD: JobState.DEAD, JobState.CANCELLED: JobState.DEAD}
    assert state(backend, grandchild) is cascaded.get(expected, JobState.WAITING)
    job = backend.jobs.get(child)
    if expected is JobState.DEAD:
        error = job.last_error
        assert error is not None
        assert error["type"] == "offload.core.errors.ParentFailed"
        assert error["message"] == f"parent job {parent} (node 'parent') ended {ended}"
        assert error["traceback"] is None
        assert job.finished_at is not None
    if expected is JobState.CANCELLED:
        assert job.finished_at is not None and job.errors == []
    # Each change of the child is an event, once, whichever statement made it.
    kinds = [e["kind"] for e in RawDB(db_url).events() if e["job_id"] == child]
    assert kinds == ["enqueued", {JobState.AVAILABLE: "released"}.get(expected, str(expected))]


def test_a_rescued_node_with_attempts_left_releases_nothing(backend: Backend) -> None:
    ids = store(backend, [node("a", max_attempts=3), node("b")], [Edge(1, parent=0)])
    expire_lease(backend, claim(backend, lease=SHORT_LEASE)[0])
    assert ids[0] in backend.claims.rescue(RescueParams())
    assert state(backend, ids[0]) is JobState.AVAILABLE
    assert state(backend, ids[1]) is JobState.WAITING


def test_cascade_over_two_levels_in_one_batch(backend: Backend, db_url: str) -> None:
    # a -> b -> c -> d with `cancel` edges: a's death cancels b, c and d at once.
    nodes = [node(x) for x in "abcd"]
    edges = [Edge(i + 1, parent=i, on_failure=CANCEL) for i in range(3)]
    ids = store(backend, nodes, edges)
    end(backend, claim(backend), JobState.DEAD)
    assert [state(backend, i) for i in ids] == [JobState.DEAD] + [JobState.CANCELLED] * 3
    kinds = [(e["job_id"], e["kind"]) for e in RawDB(db_url).events() if e["kind"] != "enqueued"]
    assert (ids[3], "cancelled") in kinds


def test_a_parent_retried_by_hand_releases_nothing_more(backend: Backend, db_url: str) -> None:
    ids = store(backend, [node("p"), node("c")], [Edge(1, parent=0, on_failure=RUN)])
    end(backend, claim(backend), JobState.DEAD)
    assert state(backend, ids[1]) is JobState.AVAILABLE
    backend.jobs.retry(JobRetryParams(ids[0]))
    taken = claim(backend)
    assert {j.id for j in taken} == set(ids)
    end(backend, [j for j in taken if j.id == ids[0]], JobState.SUCCEEDED)
    assert state(backend, ids[1]) is JobState.RUNNING
    assert pending(db_url, ids[1]) == 0


def test_cancel_many_and_supersede_release(backend: Backend) -> None:
    ids = store(backend, [node("p"), node("c")], [Edge(1, parent=0, on_failure=RUN)])
    assert [c.id for c in backend.jobs.cancel_many(JobFilter(ids=[ids[0]]))] == [ids[0]]
    assert state(backend, ids[1]) is JobState.AVAILABLE
    # A job superseded by a newer one with its replace key is cancelled: so is its child.
    (old,) = insert(backend, 1, replace_key="r", delay=60.0)
    (child,) = store(backend, [node("c")], [Edge(0, parent_id=old, on_failure=CANCEL)])
    (new,) = insert(backend, 1, replace_key="r", delay=60.0)
    assert backend.jobs.get(old).superseded_by == new
    assert state(backend, child) is JobState.CANCELLED


# -- edges to stored jobs --------------------------------------------------------------


def test_an_unknown_parent_stores_nothing(backend: Backend, db_url: str) -> None:
    (stored,) = insert(backend, 1)
    before = RawDB(db_url).count_jobs()
    edges = [Edge(0, parent_id=stored), Edge(0, parent_id=stored + 1000)]
    with pytest.raises(UnknownDependency) as caught:
        store(backend, [node("c")], edges)
    assert caught.value.job_id == stored + 1000
    raw = RawDB(db_url)
    assert raw.count_jobs() == before
    assert raw.scalar("SELECT count(*) AS n FROM offload_workflows") == 0
    assert raw.scalar("SELECT count(*) AS n FROM offload_dependencies") == 0
    assert raw.scalar("SELECT children FROM offload_jobs WHERE id = ?", [stored]) == 0
    with pytest.raises(UnknownDependency):
        store(backend, [node("c")], [Edge(0, parent_id=2**70)])


def test_stored_parents_already_over_apply_at_once(backend: Backend, db_url: str) -> None:
    good, bad = insert(backend, 2, max_attempts=1)
    jobs = claim(backend)
    end(backend, [j for j in jobs if j.id == good], JobState.SUCCEEDED)
    end(backend, [j for j in jobs if j.id == bad], JobState.DEAD)
    (released,) = store(backend, [node("c")], [Edge(0, parent_id=good)], kind=None)
    assert state(backend, released) is JobState.AVAILABLE
    assert backend.jobs.get(released).workflow_id is None
    (failed,) = store(backend, [node("c")], [Edge(0, parent_id=bad)])
    assert state(backend, failed) is JobState.DEAD
    # A running parent: the child waits, and is released by its end.
    (running,) = insert(backend, 1)
    (job,) = [j for j in claim(backend) if j.id == running]
    (waiting,) = store(backend, [node("c")], [Edge(0, parent_id=running)])
    assert state(backend, waiting) is JobState.WAITING
    end(backend, [job], JobState.SUCCEEDED)
    assert state(backend, waiting) is JobState.AVAILABLE


@pytest.fixture
def caller(db_url: str) -> Iterator[Any]:
    if is_sqlite(db_url):
        conn: Any = sqlite3.connect(sqlite_path(db_url))
        yield conn
        conn.close()
    else:
        with psycopg.connect(db_url) as pg:
            yield pg


def test_an_insert_in_a_callers_rolled_back_transaction_stores_nothing(
    backend: Backend, db_url: str, caller: Any
) -> None:
    store(backend, *chain(3), conn=caller)
    caller.rollback()
    raw = RawDB(db_url)
    assert raw.count_jobs() == 0
    assert raw.scalar("SELECT count(*) AS n FROM offload_workflows") == 0
    ids = store(backend, *chain(3), conn=caller)
    caller.commit()
    assert [state(backend, i) for i in ids] == [JobState.AVAILABLE] + [JobState.WAITING] * 2


def test_ten_thousand_nodes_in_one_statement(backend: Backend, db_url: str) -> None:
    n = 10_000
    nodes = [node(f"m{i}") for i in range(n)] + [node("reduce")]
    started = time.perf_counter()
    ids = store(backend, nodes, [Edge(n, parent=i) for i in range(n)], kind="map")
    took = time.perf_counter() - started
    print(f"10,000-node fan-in stored in {took:.2f} s")
    assert len(ids) == n + 1 and ids == sorted(ids)
    assert pending(db_url, ids[-1]) == n
    raw = RawDB(db_url)
    assert raw.scalar("SELECT count(*) AS n FROM offload_dependencies") == n


def test_a_full_queue_refuses_the_whole_workflow(backend: Backend, db_url: str) -> None:
    backend.queues.set("small", QueuePolicy(max_depth=2))
    with pytest.raises(QueueFull):
        store(backend, [node("a", "small"), node("b", "small"), node("c", "small")])
    assert RawDB(db_url).count_jobs() == 0
    assert len(store(backend, [node("a", "small"), node("b", "small")])) == 2


def test_nodes_with_keys_are_refused(backend: Backend) -> None:
    keyed = Node("k", JobSpec(task="t", queue="default"), Payload(unique_key="u"))
    with pytest.raises(InvalidWorkflow):
        store(backend, [keyed])
    with pytest.raises(InvalidWorkflow):
        store(backend, [node("a")], [Edge(0)])


# -- concurrency -----------------------------------------------------------------------


def test_two_parents_ended_at_once_always_release(backend: Backend) -> None:
    for _ in range(20):
        ids = store(
            backend, [node("a"), node("b"), node("c")], [Edge(2, parent=0), Edge(2, parent=1)]
        )
        jobs = claim(backend)
        assert len(jobs) == 2
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(job: Job) -> None:
            try:
                start.wait()
                end(backend, [job], JobState.SUCCEEDED)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert state(backend, ids[2]) is JobState.AVAILABLE
        end(backend, claim(backend), JobState.SUCCEEDED)


def test_batches_counting_down_shared_children_at_once(backend: Backend) -> None:
    """Two batches each end a parent of both children c1 and c2: both release them, and
    neither waits for the other in a cycle (a deadlock would fail one batch)."""
    for _ in range(10):
        nodes = [node(x) for x in ("a1", "a2", "b1", "b2", "c1", "c2")]
        edges = [Edge(c, parent=p) for c, p in ((4, 0), (4, 2), (5, 1), (5, 3))]
        edges += [Edge(4, parent=1, on_failure=RUN), Edge(5, parent=0, on_failure=RUN)]
        edges += [Edge(4, parent=3, on_failure=RUN), Edge(5, parent=2, on_failure=RUN)]
        ids = store(backend, nodes, edges)
        by_id = {j.id: j for j in claim(backend)}
        batches = [[by_id[ids[0]], by_id[ids[1]]], [by_id[ids[3]], by_id[ids[2]]]]
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(jobs: list[Job]) -> None:
            try:
                start.wait()
                end(backend, jobs, JobState.SUCCEEDED)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(b,)) for b in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert [state(backend, i) for i in ids[4:]] == [JobState.AVAILABLE] * 2
        end(backend, claim(backend), JobState.SUCCEEDED)


def test_an_edge_to_a_parent_ending_at_once_is_resolved(backend: Backend) -> None:
    for _ in range(20):
        (parent,) = insert(backend, 1)
        job = claim(backend)[0]
        start = threading.Barrier(2)
        stored: list[int] = []

        def link() -> None:
            start.wait()
            stored.extend(store(backend, [node("c", "other")], [Edge(0, parent_id=parent)]))

        thread = threading.Thread(target=link)
        thread.start()
        start.wait()
        end(backend, [job], JobState.SUCCEEDED)
        thread.join()
        assert state(backend, stored[0]) is JobState.AVAILABLE


# -- reads -----------------------------------------------------------------------------


def test_parents_in_order_with_results(backend: Backend) -> None:
    nodes = [node("x"), node("y"), node("z"), node("c", takes=Takes.ALL)]
    edges = [Edge(3, parent=2), Edge(3, parent=0, on_failure=RUN), Edge(3, parent=1)]
    x, y, z, c = store(backend, nodes, edges)
    by_id = {j.id: j for j in claim(backend)}
    end(backend, [by_id[x]], JobState.SUCCEEDED, {"x": 1})
    end(backend, [by_id[z]], JobState.SUCCEEDED, [1, 2])
    end(backend, [by_id[y]], JobState.DEAD)
    read = backend.workflows.parents(ParentsReadParams([c, x]))
    assert read[x].parents == []
    got = read[c]
    assert [(p.job_id, p.node, p.state) for p in got.parents] == [
        (z, "z", JobState.SUCCEEDED),
        (x, "x", JobState.SUCCEEDED),
        (y, "y", JobState.DEAD),
    ]
    assert [p.result for p in got.parents] == [[1, 2], {"x": 1}, None]
    assert got.parents[2].error is not None and got.parents[2].error["message"] == "boom"
    assert got.size == len(b"[1,2]") + len(b'{"x":1}') and not got.too_large
    small = backend.workflows.parents(ParentsReadParams([c], limit=5))[c]
    assert small.too_large and small.size == got.size
    assert [p.result for p in small.parents] == [None, None, None]
    bare = backend.workflows.parents(ParentsReadParams([c], results=False))[c]
    assert [p.result for p in bare.parents] == [None, None, None]


def test_results_page_in_edge_order(backend: Backend) -> None:
    n = 7
    nodes = [node(f"m{i}") for i in range(n)] + [node("r", takes=Takes.STREAM)]
    ids = store(backend, nodes, [Edge(n, parent=i) for i in range(n)])
    by_id = {j.id: j for j in claim(backend)}
    for i, job_id in enumerate(ids[:-1]):
        end(backend, [by_id[job_id]], JobState.SUCCEEDED, [i])
    assert backend.jobs.get(ids[-1]).takes == "stream"
    pages, after = [], -1
    while True:
        page = backend.workflows.results(ResultsPageParams(ids[-1], after, 3))
        if not page:
            break
        pages.append(page)
        after = page[-1][0]
    assert [len(p) for p in pages] == [3, 3, 1]
    flat = [pos for p in pages for pos, _ in p]
    assert flat == list(range(n))
    assert [orjson.loads(r or "null") for p in pages for _, r in p] == [[i] for i in range(n)]


def test_get_list_and_cancel(backend: Backend) -> None:
    first = backend.workflows.insert(WorkflowInsertParams("chain", *chain(3), name="one"))
    second = backend.workflows.insert(WorkflowInsertParams("group", [node("g0"), node("g1")], []))
    assert first.workflow_id is not None and second.workflow_id is not None
    record = backend.workflows.get(first.workflow_id)
    assert (record.kind, record.name, [n.name for n in record.nodes]) == (
        "chain", "one", ["n0", "n1", "n2"],
    )  # fmt: skip
    listed = backend.workflows.list(WorkflowListParams())
    assert [w.id for w in listed] == [second.workflow_id, first.workflow_id]
    assert listed[1].total == 3
    assert listed[1].states == {JobState.AVAILABLE: 1, JobState.WAITING: 2}
    assert [
        w.id for w in backend.workflows.list(WorkflowListParams(before_id=second.workflow_id))
    ] == [first.workflow_id]
    running = claim(backend, 1)[0]
    assert running.id == first.ids[0] or running.workflow_id == second.workflow_id
    changes = backend.workflows.cancel(first.workflow_id)
    assert [c.id for c in changes] == first.ids
    for change in changes:
        expected = JobState.RUNNING if change.id == running.id else JobState.CANCELLED
        assert change.state is expected
    assert all(
        backend.jobs.get(i).state.finished or backend.jobs.get(i).cancel_requested
        for i in first.ids
    )
    assert state(backend, second.ids[0]) in (JobState.AVAILABLE, JobState.RUNNING)
    with pytest.raises(WorkflowNotFound):
        backend.workflows.get(first.workflow_id + 100)
    with pytest.raises(WorkflowNotFound):
        backend.workflows.cancel(first.workflow_id + 100)


def test_prune_drops_edges_and_empty_workflows(backend: Backend, db_url: str) -> None:
    from offload.backends.params import JobPruneParams

    store(backend, *chain(2))
    end(backend, claim(backend), JobState.SUCCEEDED)
    end(backend, claim(backend), JobState.SUCCEEDED)
    time.sleep(0.05)
    backend.jobs.prune(JobPruneParams({JobState.SUCCEEDED: 0.0}))
    raw = RawDB(db_url)
    assert raw.count_jobs() == 0
    assert raw.scalar("SELECT count(*) AS n FROM offload_dependencies") == 0
    assert raw.scalar("SELECT count(*) AS n FROM offload_workflows") == 0


# -- wake-ups --------------------------------------------------------------------------


def test_a_release_wakes_workers(backend: Backend, listener: Listener) -> None:
    ids = store(backend, *chain(2))
    assert woken(listener)
    jobs = claim(backend)
    assert not woken(listener, 0.2)
    end(backend, jobs, JobState.SUCCEEDED)
    assert woken(listener)
    assert state(backend, ids[1]) is JobState.AVAILABLE


def test_purge_keeps_a_shed_job_others_wait_for(backend: Backend) -> None:
    backend.queues.set("q", QueuePolicy(shed_priority=1, shed_depth=1, resume_depth=0).check())
    filler = store(backend, [node("filler", queue="q"), node("alone", queue="q")], kind=None)
    parent, child = store(backend, [node("parent", queue="q"), node("child")], [Edge(1, parent=0)])
    alone = filler[1]
    assert backend.sweep.shed("q")  # over the watermark: the waiting ones are shed
    assert state(backend, parent) is JobState.SHED and state(backend, alone) is JobState.SHED
    assert backend.jobs.purge(JobFilter(state=JobState.SHED)) >= 1
    assert state(backend, parent) is JobState.SHED, "its child still waits for it"
    assert state(backend, child) is JobState.WAITING
    with pytest.raises(offload.JobNotFound):
        backend.jobs.get(alone)
