"""Claims: batches with a lease, attempt counting, what is and is not claimable."""

from __future__ import annotations

import threading
from datetime import timedelta

from offload.backends.base import Backend
from offload.backends.params import ClaimParams, FinishParams, Outcome, ReleaseParams
from offload.core.errors import BackendError
from offload.core.states import JobState
from tests.conformance.helpers import (
    claim_one,
    error_json,
    insert,
    insert_jobs,
    lease_of,
    new_job,
    wait_db_time_past,
)


def test_claim_takes_a_batch_with_a_lease(backend: Backend) -> None:
    ids = insert(backend, 5)
    before = backend.now()
    claimed = backend.claims.claim(ClaimParams("worker-A", "default", 3, 30.0))
    after = backend.now()
    assert [job.id for job in claimed] == ids[:3]
    for job in claimed:
        assert job.state is JobState.RUNNING
        assert job.attempt == 1
        assert job.worker == "worker-A"
        assert job.started_at is not None
        assert before <= job.started_at <= after
        assert job.lease_until is not None
        assert job.lease_until > after
        assert before + timedelta(seconds=30) <= job.lease_until <= after + timedelta(seconds=30)
        # What the claim returned is what it stored.
        assert backend.jobs.get(job.id) == job
    for job_id in ids[3:]:
        job = backend.jobs.get(job_id)
        assert (job.state, job.attempt, job.worker) == (JobState.AVAILABLE, 0, None)


def test_claim_respects_the_limit_and_never_takes_a_job_twice(backend: Backend) -> None:
    ids = insert(backend, 7)
    first = backend.claims.claim(ClaimParams("w1", "default", 4, 30.0))
    second = backend.claims.claim(ClaimParams("w2", "default", 4, 30.0))
    third = backend.claims.claim(ClaimParams("w3", "default", 4, 30.0))
    assert len(first) == 4
    assert len(second) == 3
    assert third == []
    assert sorted(job.id for job in first + second) == ids
    assert {job.worker for job in second} == {"w2"}


def test_claim_on_an_empty_or_unknown_queue_returns_nothing(backend: Backend) -> None:
    assert backend.claims.claim(ClaimParams("w1", "default", 10, 30.0)) == []
    insert(backend, 1, queue="other")
    assert backend.claims.claim(ClaimParams("w1", "nobody-uses-this", 10, 30.0)) == []


def test_claim_with_a_non_positive_limit_takes_nothing(backend: Backend) -> None:
    ids = insert(backend, 3)
    for limit in (0, -1):
        try:
            claimed = backend.claims.claim(ClaimParams("w1", "default", limit, 30.0))
        except (ValueError, BackendError):
            claimed = []
        assert claimed == []
        assert {backend.jobs.get(i).state for i in ids} == {JobState.AVAILABLE}


def test_lease_length_is_the_one_asked_for(backend: Backend) -> None:
    insert(backend, 1)
    job = backend.claims.claim(ClaimParams("w1", "default", 1, 0.75))[0]
    assert job.started_at is not None
    assert job.lease_until is not None
    assert abs((job.lease_until - job.started_at).total_seconds() - 0.75) < 0.01


def test_claim_does_not_take_finished_or_future_jobs(backend: Backend) -> None:
    succeeded, dead, cancelled, future = insert(backend, 4)
    for job_id, state in ((succeeded, JobState.SUCCEEDED), (dead, JobState.DEAD)):
        job = backend.claims.claim(ClaimParams("w1", "default", 1, 30.0))[0]
        assert job.id == job_id
        assert (
            backend.claims.finish(FinishParams("w1", [Outcome(job.id, job.attempt, state)])) == []
        )
    backend.jobs.cancel(cancelled)
    backend.claims.finish(
        FinishParams(
            "w1",
            [
                Outcome(
                    claim_one(backend).id,
                    1,
                    JobState.RETRYING,
                    error=error_json(),
                    delay=60.0,
                )
            ],
        )
    )
    assert backend.jobs.get(future).state is JobState.RETRYING
    assert backend.claims.claim(ClaimParams("w1", "default", 10, 30.0)) == []


def test_due_retrying_job_is_claimed_with_the_next_attempt(backend: Backend) -> None:
    (job_id,) = insert(backend, 1, max_attempts=5)
    job = claim_one(backend)
    lost = backend.claims.finish(
        FinishParams("w1", [Outcome(job.id, 1, JobState.RETRYING, error=error_json(), delay=0.2)])
    )
    assert lost == []
    assert backend.claims.claim(ClaimParams("w1", "default", 1, 30.0)) == []
    wait_db_time_past(backend, backend.jobs.get(job_id).run_at)
    again = claim_one(backend, worker="w2")
    assert (again.id, again.attempt, again.worker) == (job_id, 2, "w2")
    assert again.state is JobState.RUNNING
    assert len(again.errors) == 1


def test_running_job_is_not_claimed_again(backend: Backend) -> None:
    insert(backend, 1)
    job = claim_one(backend, worker="w1")
    assert backend.claims.claim(ClaimParams("w2", "default", 5, 30.0)) == []
    stored = backend.jobs.get(job.id)
    assert (stored.worker, stored.attempt) == ("w1", 1)
    # Releasing makes it claimable by someone else with the same attempt number.
    assert backend.claims.release(ReleaseParams("w1", [lease_of(job)])) == 1
    other = claim_one(backend, worker="w2")
    assert (other.id, other.attempt, other.worker) == (job.id, 1, "w2")


def test_threads_sharing_one_backend_claim_each_job_once(backend: Backend) -> None:
    ids = set(insert_jobs(backend, [new_job(args=[i]) for i in range(400)]))
    taken: list[list[int]] = [[] for _ in range(8)]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def claimer(slot: int) -> None:
        try:
            start.wait()
            while jobs := backend.claims.claim(ClaimParams(f"t{slot}", "default", 7, 30.0)):
                taken[slot].extend(job.id for job in jobs)
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    flat = [job_id for part in taken for job_id in part]
    assert len(flat) == len(ids)
    assert set(flat) == ids
