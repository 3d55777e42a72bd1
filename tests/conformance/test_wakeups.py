"""The one wake-up path: every operation that makes jobs available, or asks a running job to
stop, wakes a listening worker once it commits; claims and outcomes do not."""

from __future__ import annotations

from datetime import timedelta

from offload.backends.base import Backend, Listener
from offload.backends.params import (
    JobFilter,
    JobRetryManyParams,
    JobRetryParams,
    ReleaseParams,
    RescueParams,
)
from offload.core.states import JobState
from tests.conformance.helpers import claim_one, finish_next, insert, lease_of, woken


def _quiet(listener: Listener) -> bool:
    return not woken(listener, 0.2)


def test_enqueue_one_and_many_wake(backend: Backend, listener: Listener) -> None:
    insert(backend, 1)
    assert woken(listener)
    insert(backend, 50)
    assert woken(listener)
    # A delayed job wakes workers too (one empty claim): a wake-up is only a hint.
    insert(backend, 1, delay=60.0)
    assert woken(listener)


def test_claims_and_outcomes_do_not_wake(backend: Backend, listener: Listener) -> None:
    insert(backend, 2)
    assert woken(listener)
    finish_next(backend, JobState.SUCCEEDED)
    claim_one(backend)
    assert _quiet(listener)


def test_release_rescue_and_retry_wake(backend: Backend, listener: Listener) -> None:
    insert(backend, 3)
    assert woken(listener)
    held = claim_one(backend)
    backend.claims.release(ReleaseParams("w1", [lease_of(held)]))
    assert woken(listener)
    expired = claim_one(backend, lease=3600.0)
    assert expired.lease_until is not None
    moment = expired.lease_until + timedelta(seconds=1)
    assert backend.claims.rescue(RescueParams(now=moment)) == [expired.id]
    assert woken(listener)
    dead = finish_next(backend, JobState.DEAD)
    assert _quiet(listener)
    backend.jobs.retry(JobRetryParams(dead))
    assert woken(listener)


def test_a_cancel_wakes_the_worker_running_the_job(backend: Backend, listener: Listener) -> None:
    insert(backend, 1)
    assert woken(listener)
    running = claim_one(backend)
    backend.jobs.cancel(running.id)
    assert woken(listener)


def test_bulk_retry_and_a_bulk_cancel_of_running_jobs_wake(
    backend: Backend, listener: Listener
) -> None:
    insert(backend, 3)
    assert woken(listener)
    dead = finish_next(backend, JobState.DEAD)
    claim_one(backend)
    assert _quiet(listener)
    assert backend.jobs.retry_many(JobRetryManyParams(JobFilter(ids=[dead]), {}))
    assert woken(listener)
    # Cancelling only queued jobs wakes nobody; a running one's worker must hear of it.
    assert backend.jobs.cancel_many(JobFilter(state=JobState.AVAILABLE))
    assert _quiet(listener)
    assert backend.jobs.cancel_many(JobFilter(state=JobState.RUNNING))
    assert woken(listener)
    assert backend.jobs.purge(JobFilter(queue="default")) == 2
    assert _quiet(listener)
