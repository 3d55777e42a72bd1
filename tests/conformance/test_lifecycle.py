"""Heartbeat, finish, release and fencing of stale lease holders (RELIABILITY test 4)."""

from __future__ import annotations

from datetime import timedelta

import orjson

from offload.backends.base import Backend
from offload.backends.params import (
    ClaimParams,
    FinishParams,
    Heartbeat,
    HeartbeatParams,
    Lease,
    Outcome,
    ProgressReport,
    ReleaseParams,
    RescueParams,
)
from offload.core.states import JobState
from tests.conformance.helpers import (
    SHORT_LEASE,
    RawDB,
    claim_one,
    error_json,
    expire_lease,
    insert,
    lease_of,
)

# -- heartbeat --------------------------------------------------------------------------


def test_heartbeat_extends_many_leases_in_one_call(backend: Backend, db_url: str) -> None:
    insert(backend, 4)
    jobs = backend.claims.claim(ClaimParams("w1", "default", 3, SHORT_LEASE))
    raw = RawDB(db_url)
    before = {job.id: raw.job_row(job.id) for job in jobs}
    now = backend.now()
    assert backend.claims.heartbeat(
        HeartbeatParams("w1", [lease_of(job) for job in jobs], 60.0)
    ) == Heartbeat([], [])
    for job in jobs:
        stored = backend.jobs.get(job.id)
        assert stored.lease_until is not None
        assert job.lease_until is not None
        assert stored.lease_until > job.lease_until
        assert now + timedelta(seconds=59) <= stored.lease_until <= now + timedelta(seconds=61)
        # Nothing but the lease changed.
        row = raw.job_row(job.id)
        assert {k: v for k, v in row.items() if k != "lease_until"} == {
            k: v for k, v in before[job.id].items() if k != "lease_until"
        }
        assert stored.state is JobState.RUNNING


def test_heartbeat_returns_the_leases_not_held(backend: Backend, db_url: str) -> None:
    held, other_worker, not_running = insert(backend, 3)
    mine = claim_one(backend, worker="w1")
    theirs = claim_one(backend, worker="w2")
    assert (mine.id, theirs.id) == (held, other_worker)
    snapshot = RawDB(db_url).all_rows()
    leases = [
        Lease(10_000_000, 1),  # no such job
        Lease(theirs.id, theirs.attempt),  # held by another worker
        Lease(mine.id, mine.attempt + 1),  # wrong attempt
        Lease(not_running, 0),  # still available
    ]
    assert backend.claims.heartbeat(HeartbeatParams("w1", leases, 60.0)).lost == [
        lease.id for lease in leases
    ]
    assert RawDB(db_url).all_rows() == snapshot
    # Mixed with a held lease: only the bad ones come back, in the order given.
    beat = backend.claims.heartbeat(
        HeartbeatParams("w1", [leases[1], lease_of(mine), leases[0]], 60.0)
    )
    assert beat.lost == [theirs.id, 10_000_000]
    assert beat.cancel == []
    assert backend.claims.heartbeat(HeartbeatParams("w1", [], 60.0)).lost == []


def test_heartbeat_of_a_finished_job_reports_it_lost(backend: Backend) -> None:
    insert(backend, 1)
    job = claim_one(backend)
    assert (
        backend.claims.finish(FinishParams("w1", [Outcome(job.id, 1, JobState.SUCCEEDED, "1")]))
        == []
    )
    assert backend.claims.heartbeat(HeartbeatParams("w1", [lease_of(job)], 60.0)).lost == [job.id]
    assert backend.jobs.get(job.id).lease_until is None


def test_heartbeat_reports_cancel_requests_for_held_jobs_only(backend: Backend) -> None:
    insert(backend, 3)
    a, b = backend.claims.claim(ClaimParams("w1", "default", 2, 30.0))
    c = claim_one(backend, worker="w2")
    assert backend.jobs.cancel(a.id).cancel_requested is True
    assert backend.jobs.cancel(c.id).cancel_requested is True
    beat = backend.claims.heartbeat(HeartbeatParams("w1", [lease_of(b), lease_of(a)], 60.0))
    assert beat == Heartbeat(lost=[], cancel=[a.id])
    # A cancel request is news only to the lease holder.
    assert backend.claims.heartbeat(HeartbeatParams("w1", [lease_of(c)], 60.0)) == Heartbeat(
        lost=[c.id], cancel=[]
    )
    assert backend.claims.heartbeat(HeartbeatParams("w2", [lease_of(c)], 60.0)) == Heartbeat(
        lost=[], cancel=[c.id]
    )
    assert backend.jobs.get(a.id).state is JobState.RUNNING  # until its worker stops it


# -- progress ---------------------------------------------------------------------------


def test_progress_is_stored_for_held_attempts_only(backend: Backend, db_url: str) -> None:
    insert(backend, 2)
    job = claim_one(backend, worker="w1")
    other = claim_one(backend, worker="w2")
    backend.claims.progress("w1", [ProgressReport(job.id, 1, 0.25, "a quarter")])
    assert backend.jobs.get(job.id).progress == {"fraction": 0.25, "message": "a quarter"}
    backend.claims.progress("w1", [ProgressReport(job.id, 1, 0.5, None)])
    assert backend.jobs.get(job.id).progress == {"fraction": 0.5, "message": None}
    raw = RawDB(db_url)
    rows = raw.all_rows()
    backend.claims.progress(
        "w1",
        [
            ProgressReport(job.id, 2, 0.9, "wrong attempt"),
            ProgressReport(other.id, 1, 0.9, "not mine"),
            ProgressReport(10_000_000, 1, 0.9, "no such job"),
        ],
    )
    backend.claims.progress("w1", [])
    assert raw.all_rows() == rows
    assert (
        backend.claims.finish(FinishParams("w1", [Outcome(job.id, 1, JobState.SUCCEEDED, "1")]))
        == []
    )
    done = raw.job_row(job.id)
    backend.claims.progress("w1", [ProgressReport(job.id, 1, 1.0, "after the end")])
    assert raw.job_row(job.id) == done


# -- finish -----------------------------------------------------------------------------


def test_finish_succeeded_records_the_result(backend: Backend) -> None:
    insert(backend, 3)
    jobs = backend.claims.claim(ClaimParams("w1", "default", 3, 30.0))
    results = ['{"a": [1, 2.5, null], "b": "\\u0000x"}', "null", "42"]
    outcomes = [
        Outcome(job.id, job.attempt, JobState.SUCCEEDED, result=text)
        for job, text in zip(jobs, results, strict=True)
    ]
    before = backend.now()
    assert backend.claims.finish(FinishParams("w1", outcomes)) == []
    after = backend.now()
    for job, text in zip(jobs, results, strict=True):
        done = backend.jobs.get(job.id)
        assert done.state is JobState.SUCCEEDED
        assert done.result == orjson.loads(text)
        assert done.attempt == 1
        assert done.errors == []
        assert done.lease_until is None
        assert done.finished_at is not None
        assert before <= done.finished_at <= after
        assert done.started_at == job.started_at


def test_finish_retrying_schedules_the_next_attempt(backend: Backend) -> None:
    insert(backend, 1, max_attempts=3)
    job = claim_one(backend)
    before = backend.now()
    error = error_json("ValueError", "bad input 1")
    assert (
        backend.claims.finish(
            FinishParams("w1", [Outcome(job.id, 1, JobState.RETRYING, error=error, delay=30)])
        )
        == []
    )
    after = backend.now()
    retrying = backend.jobs.get(job.id)
    assert retrying.state is JobState.RETRYING
    assert before + timedelta(seconds=30) <= retrying.run_at <= after + timedelta(seconds=30)
    assert retrying.finished_at is None
    assert retrying.lease_until is None
    assert retrying.result is None
    assert retrying.attempt == 1
    assert len(retrying.errors) == 1
    assert retrying.errors[0]["type"] == "ValueError"
    assert retrying.errors[0]["message"] == "bad input 1"
    assert retrying.last_error == retrying.errors[0]
    assert backend.claims.claim(ClaimParams("w1", "default", 1, 30.0)) == []


def test_errors_accumulate_one_entry_per_failed_attempt(backend: Backend) -> None:
    insert(backend, 1, max_attempts=3)
    for attempt in (1, 2):
        job = claim_one(backend)
        assert job.attempt == attempt
        error = error_json("KeyError", f"attempt {attempt}")
        outcome = Outcome(job.id, attempt, JobState.RETRYING, error=error, delay=0.0)
        assert backend.claims.finish(FinishParams("w1", [outcome])) == []
    job = claim_one(backend)
    error = error_json("RuntimeError", "final")
    assert (
        backend.claims.finish(FinishParams("w1", [Outcome(job.id, 3, JobState.DEAD, error=error)]))
        == []
    )
    dead = backend.jobs.get(job.id)
    assert dead.state is JobState.DEAD
    assert dead.finished_at is not None
    assert dead.attempt == 3
    assert [(e["type"], e["message"]) for e in dead.errors] == [
        ("KeyError", "attempt 1"),
        ("KeyError", "attempt 2"),
        ("RuntimeError", "final"),
    ]
    assert backend.claims.claim(ClaimParams("w1", "default", 1, 30.0)) == []


def test_finish_many_outcomes_in_one_call(backend: Backend) -> None:
    insert(backend, 4)
    a, b, c, d = backend.claims.claim(ClaimParams("w1", "default", 4, 30.0))
    lost = backend.claims.finish(
        FinishParams(
            "w1",
            [
                Outcome(a.id, 1, JobState.SUCCEEDED, result='"ok"'),
                Outcome(b.id, 1, JobState.DEAD, error=error_json()),
                Outcome(c.id, 2, JobState.SUCCEEDED, result='"stale"'),  # wrong attempt
                Outcome(d.id, 1, JobState.CANCELLED),
            ],
        )
    )
    assert lost == [c.id]
    assert [backend.jobs.get(j.id).state for j in (a, b, c, d)] == [
        JobState.SUCCEEDED,
        JobState.DEAD,
        JobState.RUNNING,
        JobState.CANCELLED,
    ]
    assert backend.claims.finish(FinishParams("w1", [])) == []


def test_finishing_twice_is_refused(backend: Backend, db_url: str) -> None:
    insert(backend, 1)
    job = claim_one(backend)
    assert (
        backend.claims.finish(
            FinishParams("w1", [Outcome(job.id, 1, JobState.SUCCEEDED, '"first"')])
        )
        == []
    )
    row = RawDB(db_url).job_row(job.id)
    assert backend.claims.finish(
        FinishParams("w1", [Outcome(job.id, 1, JobState.SUCCEEDED, '"second"')])
    ) == [job.id]
    assert backend.claims.finish(
        FinishParams("w1", [Outcome(job.id, 1, JobState.DEAD, error=error_json())])
    ) == [job.id]
    assert RawDB(db_url).job_row(job.id) == row
    assert backend.jobs.get(job.id).result == "first"


# -- release ----------------------------------------------------------------------------


def test_release_returns_jobs_without_spending_the_attempt(backend: Backend) -> None:
    ids = insert(backend, 3)
    jobs = backend.claims.claim(ClaimParams("w1", "default", 2, 30.0))
    assert backend.claims.release(ReleaseParams("w1", [lease_of(job) for job in jobs])) == 2
    for job in jobs:
        back = backend.jobs.get(job.id)
        assert back.state is JobState.AVAILABLE
        assert back.attempt == 0
        assert (back.worker, back.lease_until, back.started_at) == (None, None, None)
        assert back.errors == []
    again = backend.claims.claim(ClaimParams("w2", "default", 3, 30.0))
    assert sorted(job.id for job in again) == ids
    assert all(job.attempt == 1 for job in again)


def test_release_of_leases_not_held_changes_nothing(backend: Backend, db_url: str) -> None:
    insert(backend, 2)
    mine = claim_one(backend, worker="w1")
    theirs = claim_one(backend, worker="w2")
    snapshot = RawDB(db_url).all_rows()
    bad = [Lease(theirs.id, 1), Lease(mine.id, 2), Lease(10_000_000, 1)]
    assert backend.claims.release(ReleaseParams("w1", bad)) == 0
    assert backend.claims.release(ReleaseParams("w1", [])) == 0
    assert RawDB(db_url).all_rows() == snapshot


# -- fencing ----------------------------------------------------------------------------


def test_stale_owner_is_fenced_after_rescue_and_reclaim(backend: Backend, db_url: str) -> None:
    (job_id,) = insert(backend, 1, max_attempts=3)
    stale = claim_one(backend, worker="stale", lease=SHORT_LEASE)
    assert stale.attempt == 1
    expire_lease(backend, stale)
    assert backend.claims.rescue(RescueParams()) == [job_id]
    fresh = claim_one(backend, worker="fresh", lease=30.0)
    assert (fresh.id, fresh.attempt) == (job_id, 2)

    raw = RawDB(db_url)
    row = raw.job_row(job_id)
    old = lease_of(stale)
    assert backend.claims.heartbeat(HeartbeatParams("stale", [old], 60.0)).lost == [job_id]
    assert raw.job_row(job_id) == row
    for outcome in (
        Outcome(job_id, 1, JobState.SUCCEEDED, result='"from the stale worker"'),
        Outcome(job_id, 1, JobState.RETRYING, error=error_json(), delay=0.0),
        Outcome(job_id, 1, JobState.DEAD, error=error_json()),
        Outcome(job_id, 1, JobState.CANCELLED),
    ):
        assert backend.claims.finish(FinishParams("stale", [outcome])) == [job_id]
        assert raw.job_row(job_id) == row
    assert backend.claims.release(ReleaseParams("stale", [old])) == 0
    assert raw.job_row(job_id) == row
    # Neither may the stale worker use the new attempt number, nor anyone else the old one.
    assert backend.claims.heartbeat(HeartbeatParams("stale", [Lease(job_id, 2)], 60.0)).lost == [
        job_id
    ]
    assert backend.claims.finish(
        FinishParams("stale", [Outcome(job_id, 2, JobState.SUCCEEDED, "1")])
    ) == [job_id]
    assert backend.claims.finish(
        FinishParams("fresh", [Outcome(job_id, 1, JobState.SUCCEEDED, "1")])
    ) == [job_id]
    assert raw.job_row(job_id) == row

    # The new owner is unaffected.
    assert backend.claims.heartbeat(HeartbeatParams("fresh", [lease_of(fresh)], 60.0)).lost == []
    assert (
        backend.claims.finish(
            FinishParams("fresh", [Outcome(job_id, 2, JobState.SUCCEEDED, '"new"')])
        )
        == []
    )
    done = backend.jobs.get(job_id)
    assert (done.state, done.attempt, done.result, done.worker) == (
        JobState.SUCCEEDED,
        2,
        "new",
        "fresh",
    )
    assert [e["type"] for e in done.errors] == ["WorkerLost"]


def test_stale_owner_is_fenced_while_the_job_waits_to_be_reclaimed(
    backend: Backend, db_url: str
) -> None:
    (job_id,) = insert(backend, 1, max_attempts=3)
    stale = claim_one(backend, worker="stale", lease=SHORT_LEASE)
    expire_lease(backend, stale)
    assert backend.claims.rescue(RescueParams()) == [job_id]
    raw = RawDB(db_url)
    row = raw.job_row(job_id)
    assert row["state"] == "available"
    assert backend.claims.heartbeat(HeartbeatParams("stale", [lease_of(stale)], 60.0)).lost == [
        job_id
    ]
    assert backend.claims.finish(
        FinishParams("stale", [Outcome(job_id, 1, JobState.SUCCEEDED, "1")])
    ) == [job_id]
    assert raw.job_row(job_id) == row
