"""The one wake-up path: every operation that makes jobs available, or asks a running job to
stop, wakes a listening worker once it commits; claims and outcomes do not."""

from __future__ import annotations

import select
from collections.abc import Iterator
from datetime import timedelta

import pytest

import offload
from offload.backends.base import Backend, Listener
from offload.backends.params import (
    JobFilter,
    JobRetryManyParams,
    JobRetryParams,
    ReleaseParams,
    RescueParams,
)
from offload.core.records import WorkerInfo
from offload.core.states import JobState
from tests.conformance.helpers import claim_one, finish_next, insert, lease_of


@pytest.fixture
def listener(app: offload.App) -> Iterator[Listener]:
    """A worker's wake-up channel, registered so that SQLite producers know its address."""
    channel = app.backend.listener()
    now = app.backend.now()
    app.backend.workers.register(
        WorkerInfo("w1", "host", 1, ["default"], 1, now, now, wake=channel.address)
    )
    yield channel
    channel.close()


def _woken(listener: Listener, timeout: float = 5.0) -> bool:
    ready = bool(select.select([listener.fileno()], [], [], timeout)[0])
    listener.drain()
    return ready


def _quiet(listener: Listener) -> bool:
    return not _woken(listener, 0.2)


def test_enqueue_one_and_many_wake(backend: Backend, listener: Listener) -> None:
    insert(backend, 1)
    assert _woken(listener)
    insert(backend, 50)
    assert _woken(listener)
    # A delayed job wakes workers too (one empty claim): a wake-up is only a hint.
    insert(backend, 1, delay=60.0)
    assert _woken(listener)


def test_claims_and_outcomes_do_not_wake(backend: Backend, listener: Listener) -> None:
    insert(backend, 2)
    assert _woken(listener)
    finish_next(backend, JobState.SUCCEEDED)
    claim_one(backend)
    assert _quiet(listener)


def test_release_rescue_and_retry_wake(backend: Backend, listener: Listener) -> None:
    insert(backend, 3)
    assert _woken(listener)
    held = claim_one(backend)
    backend.claims.release(ReleaseParams("w1", [lease_of(held)]))
    assert _woken(listener)
    expired = claim_one(backend, lease=3600.0)
    assert expired.lease_until is not None
    moment = expired.lease_until + timedelta(seconds=1)
    assert backend.claims.rescue(RescueParams(now=moment)) == [expired.id]
    assert _woken(listener)
    dead = finish_next(backend, JobState.DEAD)
    assert _quiet(listener)
    backend.jobs.retry(JobRetryParams(dead))
    assert _woken(listener)


def test_a_cancel_wakes_the_worker_running_the_job(backend: Backend, listener: Listener) -> None:
    insert(backend, 1)
    assert _woken(listener)
    running = claim_one(backend)
    backend.jobs.cancel(running.id)
    assert _woken(listener)


def test_bulk_retry_and_a_bulk_cancel_of_running_jobs_wake(
    backend: Backend, listener: Listener
) -> None:
    insert(backend, 3)
    assert _woken(listener)
    dead = finish_next(backend, JobState.DEAD)
    claim_one(backend)
    assert _quiet(listener)
    assert backend.jobs.retry_many(JobRetryManyParams(JobFilter(ids=[dead]), {}))
    assert _woken(listener)
    # Cancelling only queued jobs wakes nobody; a running one's worker must hear of it.
    assert backend.jobs.cancel_many(JobFilter(state=JobState.AVAILABLE))
    assert _quiet(listener)
    assert backend.jobs.cancel_many(JobFilter(state=JobState.RUNNING))
    assert _woken(listener)
    assert backend.jobs.purge(JobFilter(queue="default")) == 2
    assert _quiet(listener)
