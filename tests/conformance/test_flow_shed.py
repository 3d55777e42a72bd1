"""Shedding and the sweep's statements: shed above the watermark, re-admit under it, take
shed jobs for a sweep hook exactly once across replicas, and keep them when a hook fails."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

import offload
from offload.backends.base import Backend
from offload.backends.params import ReleaseParams, SweepReadmitParams, SweepTakeParams
from offload.core.errors import ConfigurationError
from offload.core.flow import QueuePolicy
from offload.core.states import JobState
from offload.runtime.sweep import Sweeper
from tests.conformance.helpers import RawDB, claim_one, insert, lease_of

#: Shed below priority 1 above 4 jobs not started; re-admit at or under 2.
POLICY = QueuePolicy(shed_priority=1, shed_depth=4, resume_depth=2).check()

Calls = list[list[tuple[list[Any], dict[str, Any]]]]


def states(backend: Backend, ids: list[int]) -> list[JobState]:
    return [backend.jobs.get(i).state for i in ids]


def test_shed_takes_waiting_jobs_below_shed_priority_only_above_the_watermark(
    backend: Backend, db_url: str
) -> None:
    backend.queues.set("q", POLICY)
    low = insert(backend, 3, queue="q", priority=0)
    high = insert(backend, 1, queue="q", priority=1)
    assert backend.sweep.shed("q") == []  # 4 not started: at the watermark, not above
    assert set(states(backend, low + high)) == {JobState.AVAILABLE}

    running = claim_one(backend, queue="q")  # running jobs stay running
    assert running.id == high[0]
    later = insert(backend, 1, queue="q", priority=-5, delay=3600)  # scheduled
    more = insert(backend, 1, queue="q", priority=0)  # new, over the watermark: shed at once
    assert states(backend, more) == [JobState.SHED]
    urgent = insert(backend, 1, queue="q", priority=3)
    other = insert(backend, 3, queue="elsewhere", priority=0)  # no policy there
    raw = RawDB(db_url)
    before = {row["id"]: row for row in raw.all_rows()}

    shed = backend.sweep.shed("q")  # 6 not started > 4

    assert shed == sorted(low + later)  # the waiting ones
    after = {row["id"]: row for row in raw.all_rows()}
    for job_id, row in after.items():
        if job_id in shed:
            assert row["state"] == "shed"
            assert {k: v for k, v in row.items() if k not in ("state",)} == {
                k: v for k, v in before[job_id].items() if k not in ("state",)
            }
        else:
            assert row == before[job_id], f"job {job_id} changed"
    assert backend.jobs.get(running.id).state is JobState.RUNNING
    assert set(states(backend, urgent + other)) == {JobState.AVAILABLE}
    assert backend.sweep.shed("q") == []  # what is left is not below shed_priority


def test_a_queue_without_a_shed_policy_is_never_shed(backend: Backend) -> None:
    ids = insert(backend, 20, queue="q", priority=-3)
    assert backend.sweep.shed("q") == []
    backend.queues.set("q", QueuePolicy(max_depth=100))
    assert backend.sweep.shed("q") == []
    assert set(states(backend, ids)) == {JobState.AVAILABLE}


def test_readmit_oldest_first_under_resume_depth_and_never_above_the_watermark(
    backend: Backend,
) -> None:
    low = insert(backend, 7, queue="q", priority=0)
    later = insert(backend, 1, queue="q", priority=0, delay=3600)
    high = insert(backend, 3, queue="q", priority=2)
    backend.queues.set("q", POLICY)  # after the inserts: they wait, the sweep sheds them
    assert backend.sweep.shed("q") == sorted(low + later)
    readmit = SweepReadmitParams("q")

    # 3 not started: above resume_depth 2, nothing comes back.
    assert backend.sweep.readmit(readmit) == []
    claim_one(backend, queue="q")  # a high job starts: 2 not started
    back = backend.sweep.readmit(readmit)
    assert [c.id for c in back] == low[:2]  # room up to shed_depth 4: the two oldest
    assert {c.state for c in back} == {JobState.AVAILABLE}
    assert backend.sweep.readmit(readmit) == []  # 4 not started now

    for _ in range(4):
        claim_one(backend, queue="q")  # 2 high and 2 re-admitted (head start order)
    assert [c.id for c in backend.sweep.readmit(readmit)] == low[2:6]
    for _ in range(4):
        claim_one(backend, queue="q")
    back = backend.sweep.readmit(readmit)
    assert [(c.id, c.state) for c in back] == [
        (low[6], JobState.AVAILABLE),
        (later[0], JobState.SCHEDULED),  # a delayed job keeps its delay
    ]
    assert set(states(backend, high)) == {JobState.RUNNING}


def test_readmit_leaves_jobs_of_tasks_with_a_sweep_hook(backend: Backend) -> None:
    plain = insert(backend, 3, queue="q", priority=0, task="plain")
    hooked = insert(backend, 3, queue="q", priority=0, task="hooked")
    backend.queues.set("q", POLICY)  # after the inserts: they wait, the sweep sheds them
    backend.sweep.shed("q")
    back = backend.sweep.readmit(SweepReadmitParams("q", hooked=["hooked"]))
    assert [c.id for c in back] == plain
    assert set(states(backend, hooked)) == {JobState.SHED}


def test_take_leases_shed_jobs_once_and_untake_gives_them_back(backend: Backend) -> None:
    ids = insert(backend, 5, queue="q", priority=0, task="hooked")
    backend.queues.set("q", POLICY)  # after the inserts: they wait, the sweep sheds them
    backend.sweep.shed("q")
    take = SweepTakeParams("sweeper-A", "q", "hooked", 3, 30.0)
    taken = backend.sweep.take(take)
    assert [j.id for j in taken] == ids[:3]
    assert {(j.state, j.worker, j.attempt) for j in taken} == {(JobState.RUNNING, "sweeper-A", 1)}
    rest = backend.sweep.take(SweepTakeParams("sweeper-B", "q", "hooked", 10, 30.0))
    assert [j.id for j in rest] == ids[3:]
    # Only the holder gives them back, and their attempt is not spent.
    leases = [lease_of(j) for j in taken]
    assert backend.sweep.untake(ReleaseParams("sweeper-B", leases)) == 0
    assert backend.sweep.untake(ReleaseParams("sweeper-A", leases)) == 3
    for job_id in ids[:3]:
        job = backend.jobs.get(job_id)
        assert (job.state, job.attempt, job.worker) == (JobState.SHED, 0, None)


def test_take_waits_for_the_resume_watermark(backend: Backend) -> None:
    insert(backend, 5, queue="q", priority=0, task="hooked")
    backend.queues.set("q", POLICY)  # after the inserts: they wait, the sweep sheds them
    backend.sweep.shed("q")
    insert(backend, 3, queue="q", priority=1)  # 3 not started > resume_depth 2
    assert backend.sweep.take(SweepTakeParams("s", "q", "hooked", 10, 30.0)) == []


def test_two_sweepers_call_hooks_with_each_shed_job_once(
    app: offload.App, backend: Backend, db_url: str
) -> None:
    calls: Calls = []
    lock = threading.Lock()

    def hook(batch: list[tuple[list[Any], dict[str, Any]]]) -> None:
        with lock:
            calls.append(batch)

    @app.task(name="fanout", queue="q", sweep=hook)
    def fanout(n: int) -> None: ...

    ids = insert(backend, 40, queue="q", priority=0, task="fanout")
    backend.queues.set("q", POLICY)  # after the inserts: they wait, the sweep sheds them
    backend.sweep.shed("q")
    others = [offload.App(db_url) for _ in range(2)]
    sweepers = [Sweeper(a.backend, app.registry, batch=7) for a in others]
    start = threading.Barrier(2)

    def run(sweeper: Sweeper) -> None:
        start.wait()
        for _ in range(10):
            sweeper.sweep()

    threads = [threading.Thread(target=run, args=(s,)) for s in sweepers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for a in others:
        a.close()
    seen = sorted(args[0] for batch in calls for args, _ in batch)
    assert seen == list(range(40))  # every job handed to a hook, none twice
    assert all(len(batch) <= 7 for batch in calls)
    for job_id in ids:
        job = backend.jobs.get(job_id)
        assert job.state is JobState.SUCCEEDED
        assert job.result == {"swept": True}
        assert job.worker is not None and job.worker.startswith("sweep:")


def test_a_failing_hook_leaves_its_jobs_shed_and_retry_still_works(
    app: offload.App, backend: Backend
) -> None:
    called: Calls = []

    def hook(batch: list[tuple[list[Any], dict[str, Any]]]) -> None:
        called.append(batch)
        raise RuntimeError("recompute failed")

    @app.task(name="fanout", queue="q", sweep=hook)
    def fanout(n: int, user: str = "") -> None: ...

    backend.queues.set("q", POLICY)
    ids = insert(backend, 5, queue="q", priority=0, task="fanout", kwargs={"user": "ann"})
    Sweeper(backend, app.registry).sweep()  # sheds all 5, then hands them to the hook
    assert called == [[([i], {"user": "ann"}) for i in range(5)]]
    for job_id in ids:
        job = backend.jobs.get(job_id)
        assert (job.state, job.attempt, job.worker, job.result) == (JobState.SHED, 0, None, None)
    Sweeper(backend, app.registry).sweep()  # tried again on the next pass
    assert len(called) == 2
    retried = app.retry(ids[0])  # an operator may still run one by hand
    assert retried.state is JobState.AVAILABLE
    assert [j.id for j in app.jobs(state="shed", queue="q")] == sorted(ids[1:], reverse=True)


def test_concurrent_readmissions_never_pass_the_watermark(backend: Backend, db_url: str) -> None:
    insert(backend, 30, queue="q", priority=0)
    backend.queues.set("q", POLICY)  # after the inserts: they wait, the sweep sheds them
    assert len(backend.sweep.shed("q")) == 30
    replicas = [offload.App(db_url) for _ in range(4)]
    start = threading.Barrier(len(replicas))
    back: list[int] = []

    def readmit(app: offload.App) -> None:
        start.wait()
        for _ in range(5):
            back.extend(c.id for c in app.backend.sweep.readmit(SweepReadmitParams("q")))

    threads = [threading.Thread(target=readmit, args=(a,)) for a in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for a in replicas:
        a.close()
    # The first pass fills the queue up to shed_depth 4; then it is above resume_depth 2.
    assert len(back) == len(set(back)) == 4
    waiting = RawDB(db_url).scalar(
        "SELECT count(*) AS n FROM offload_jobs WHERE state = 'available'"
    )
    assert waiting == 4


@pytest.mark.parametrize("interval", [0, -1.0, math.nan, math.inf, "1", True])
def test_a_bad_sweep_interval_is_refused(app: offload.App, interval: Any) -> None:
    with pytest.raises(ConfigurationError, match="sweep_interval"):
        app.scheduler(sweep_interval=interval)
