"""Maintenance: rescue of expired leases, pruning of finished jobs, the worker registry."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from offload.backends.base import Backend
from offload.backends.params import (
    ClaimParams,
    JobPruneParams,
    RescueParams,
)
from offload.core.errors import JobNotFound
from offload.core.records import WorkerInfo
from offload.core.states import JobState
from tests.conformance.helpers import (
    SHORT_LEASE,
    RawDB,
    claim_one,
    expire_lease,
    finish_next,
    insert,
    wait_db_time_past,
)

# -- rescue -----------------------------------------------------------------------------


def test_rescue_returns_expired_leases_to_available(backend: Backend) -> None:
    expired_id, fresh_id, idle_id = insert(backend, 3, max_attempts=3)
    expired = claim_one(backend, worker="gone", lease=SHORT_LEASE)
    fresh = claim_one(backend, worker="alive", lease=60.0)
    assert (expired.id, fresh.id) == (expired_id, fresh_id)
    assert backend.claims.rescue(RescueParams()) == []  # nothing has expired yet
    expire_lease(backend, expired)
    before = backend.now()
    assert backend.claims.rescue(RescueParams()) == [expired_id]
    job = backend.jobs.get(expired_id)
    assert job.state is JobState.AVAILABLE
    assert job.attempt == 1  # the lost attempt counts
    assert job.lease_until is None
    assert job.finished_at is None
    assert job.run_at >= before
    (entry,) = job.errors
    assert entry["type"] == "WorkerLost"
    assert entry["attempt"] == 1
    assert "gone" in entry["message"]
    assert "lease" in entry["message"]
    # Other jobs are untouched, and a second sweep finds nothing.
    assert backend.jobs.get(fresh_id) == fresh
    assert backend.jobs.get(idle_id).state is JobState.AVAILABLE
    assert backend.claims.rescue(RescueParams()) == []
    again = backend.claims.claim(ClaimParams("next", "default", 10, 30.0))
    assert {job.id: job.attempt for job in again} == {idle_id: 1, expired_id: 2}


def test_rescue_of_the_last_attempt_makes_the_job_dead(backend: Backend) -> None:
    (job_id,) = insert(backend, 1, max_attempts=2)
    for attempt in (1, 2):
        job = claim_one(backend, lease=SHORT_LEASE)
        assert job.attempt == attempt
        expire_lease(backend, job)
        assert backend.claims.rescue(RescueParams()) == [job_id]
    dead = backend.jobs.get(job_id)
    assert dead.state is JobState.DEAD
    assert dead.attempt == 2
    assert dead.finished_at is not None
    assert [(e["type"], e["attempt"]) for e in dead.errors] == [
        ("WorkerLost", 1),
        ("WorkerLost", 2),
    ]
    assert backend.claims.claim(ClaimParams("w1", "default", 1, 30.0)) == []


def test_rescue_of_a_job_whose_cancel_was_requested_cancels_it(backend: Backend) -> None:
    (job_id,) = insert(backend, 1, max_attempts=3)
    job = claim_one(backend, lease=SHORT_LEASE)
    backend.jobs.cancel(job_id)
    expire_lease(backend, job)
    assert backend.claims.rescue(RescueParams()) == [job_id]
    cancelled = backend.jobs.get(job_id)
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.finished_at is not None
    assert backend.claims.claim(ClaimParams("w1", "default", 1, 30.0)) == []


def test_rescue_handles_many_jobs_at_once(backend: Backend) -> None:
    ids = insert(backend, 20, max_attempts=1)
    jobs = backend.claims.claim(ClaimParams("w1", "default", 20, SHORT_LEASE))
    expire_lease(backend, max(jobs, key=lambda j: j.lease_until or j.enqueued_at))
    assert backend.claims.rescue(RescueParams()) == ids
    assert {backend.jobs.get(i).state for i in ids} == {JobState.DEAD}


# -- prune ------------------------------------------------------------------------------


def test_prune_deletes_only_finished_states_older_than_their_age(
    backend: Backend, db_url: str
) -> None:
    insert(backend, 3, max_attempts=1)
    old_ok = finish_next(backend, JobState.SUCCEEDED)
    old_dead = finish_next(backend, JobState.DEAD)
    (old_cancelled,) = insert(backend, 1, queue="c")
    backend.jobs.cancel(old_cancelled)
    (old_retrying,) = insert(backend, 1, queue="r")
    finish_next(backend, JobState.RETRYING, queue="r")
    running = claim_one(backend).id
    (old_available,) = insert(backend, 1, queue="x")
    newest_old = backend.jobs.get(old_cancelled).finished_at
    assert newest_old is not None
    wait_db_time_past(backend, newest_old + timedelta(seconds=0.5))
    insert(backend, 2, queue="n")
    new_ok = finish_next(backend, JobState.SUCCEEDED, queue="n")
    new_dead = finish_next(backend, JobState.DEAD, queue="n")

    age = 0.4
    assert backend.jobs.prune(JobPruneParams({JobState.SUCCEEDED: age, JobState.DEAD: age})) == 2
    remaining = {row["id"] for row in RawDB(db_url).all_rows()}
    assert old_ok not in remaining
    assert old_dead not in remaining
    assert {old_cancelled, old_retrying, running, old_available, new_ok, new_dead} == remaining
    # Per-state retention: cancelled jobs kept for an hour stay; with a short one they go.
    assert backend.jobs.prune(JobPruneParams({JobState.CANCELLED: 3600.0})) == 0
    assert backend.jobs.prune(JobPruneParams({JobState.CANCELLED: age})) == 1
    assert backend.jobs.prune(JobPruneParams({JobState.SUCCEEDED: age, JobState.DEAD: age})) == 0
    with pytest.raises(JobNotFound):
        backend.jobs.get(old_ok)
    # Recently finished jobs go once they are old enough.
    time.sleep(age + 0.1)
    assert backend.jobs.prune(JobPruneParams({JobState.SUCCEEDED: age, JobState.DEAD: age})) == 2
    assert {row["id"] for row in RawDB(db_url).all_rows()} == {
        old_retrying,
        running,
        old_available,
    }


def test_prune_refuses_unfinished_states_and_deletes_nothing(backend: Backend, db_url: str) -> None:
    insert(backend, 1)
    done = finish_next(backend, JobState.SUCCEEDED)
    insert(backend, 2)
    wait_db_time_past(backend, backend.now() + timedelta(seconds=0.1))
    snapshot = RawDB(db_url).all_rows()
    for state in (JobState.AVAILABLE, JobState.RUNNING, JobState.RETRYING, JobState.SCHEDULED):
        with pytest.raises(ValueError, match="only finished states"):
            backend.jobs.prune(JobPruneParams({JobState.SUCCEEDED: 0.0, state: 0.0}))
    assert RawDB(db_url).all_rows() == snapshot
    assert backend.jobs.get(done).state is JobState.SUCCEEDED


# -- workers ----------------------------------------------------------------------------


def test_worker_registry(backend: Backend) -> None:
    now = backend.now()
    info = WorkerInfo("host:1:abc", "host", 1, ["a", "b"], 4, now, now, wake="addr")
    backend.workers.register(info)
    (listed,) = backend.workers.list()
    assert (listed.id, listed.host, listed.pid, listed.queues, listed.concurrency) == (
        "host:1:abc",
        "host",
        1,
        ["a", "b"],
        4,
    )
    assert listed.wake == "addr"
    first_beat = listed.heartbeat_at
    wait_db_time_past(backend, first_beat)
    backend.workers.heartbeat(info.id)
    (beaten,) = backend.workers.list()
    assert beaten.heartbeat_at > first_beat
    assert beaten.started_at == listed.started_at
    backend.workers.register(info)  # registering again refreshes, never duplicates
    assert len(backend.workers.list()) == 1
    backend.workers.unregister(info.id)
    assert backend.workers.list() == []


def test_worker_prune_forgets_silent_workers(backend: Backend) -> None:
    now = backend.now()
    backend.workers.register(WorkerInfo("silent", "h", 1, ["a"], 1, now, now))
    wait_db_time_past(backend, backend.now() + timedelta(seconds=0.6))
    backend.workers.register(WorkerInfo("alive", "h", 2, ["a"], 1, now, now))
    assert backend.workers.prune(3600.0) == 0
    assert backend.workers.prune(0.4) == 1
    assert [w.id for w in backend.workers.list()] == ["alive"]
