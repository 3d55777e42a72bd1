"""An injected clock (`now` in the params, `Worker(clock=...)`): leases, delays, backoff and
rescue tested by moving time forward instead of sleeping through it."""

from __future__ import annotations

from datetime import datetime, timedelta

import offload
from offload.backends.base import Backend
from offload.backends.params import (
    ClaimParams,
    FinishParams,
    HeartbeatParams,
    Outcome,
    RescueParams,
)
from offload.core.states import JobState
from tests.conformance.helpers import claim_one, error_json, insert, lease_of

HOUR = timedelta(hours=1)


def test_a_clock_ahead_claims_a_delayed_job_at_once(backend: Backend) -> None:
    (job_id,) = insert(backend, 1, delay=3600.0)
    now = backend.now()
    assert backend.claims.claim(ClaimParams("w1", "default", 10, 30.0, now=now)) == []
    later = now + 2 * HOUR
    (job,) = backend.claims.claim(ClaimParams("w1", "default", 10, 30.0, now=later))
    assert job.id == job_id
    assert (job.started_at, job.lease_until) == (later, later + timedelta(seconds=30))


def test_a_clock_past_the_lease_rescues_without_waiting(backend: Backend) -> None:
    insert(backend, 1)
    job = claim_one(backend, lease=3600.0)
    assert job.lease_until is not None
    assert backend.claims.rescue(RescueParams(now=job.lease_until - timedelta(seconds=1))) == []
    moment = job.lease_until + timedelta(seconds=1)
    assert backend.claims.rescue(RescueParams(now=moment)) == [job.id]
    rescued = backend.jobs.get(job.id)
    assert (rescued.state, rescued.run_at) == (JobState.AVAILABLE, moment)
    assert rescued.errors[-1]["type"] == "WorkerLost"
    # The rescued worker's late heartbeat finds its lease gone.
    beat = backend.claims.heartbeat(HeartbeatParams("w1", [lease_of(job)], 60.0, now=moment))
    assert beat.lost == [job.id]


def test_a_backoff_is_due_by_the_clock_that_set_it(backend: Backend) -> None:
    insert(backend, 1)
    job = claim_one(backend)
    now = backend.now()
    retry = Outcome(job.id, job.attempt, JobState.RETRYING, error=error_json(), delay=600.0)
    assert backend.claims.finish(FinishParams("w1", [retry], now=now)) == []
    assert backend.jobs.get(job.id).run_at == now + timedelta(seconds=600)
    early = ClaimParams("w1", "default", 1, 30.0, now=now + timedelta(seconds=599))
    assert backend.claims.claim(early) == []
    due = ClaimParams("w1", "default", 1, 30.0, now=now + timedelta(seconds=601))
    assert [j.id for j in backend.claims.claim(due)] == [job.id]


def test_a_worker_with_a_clock_ahead_runs_delayed_jobs_now(app: offload.App) -> None:
    ran: list[int] = []

    @app.task(name="later", executor="thread")
    def later(n: int) -> None:
        ran.append(n)

    handles = [later.options(delay=3600).enqueue(n) for n in range(3)]
    ahead = app.backend.now() + 2 * HOUR

    def clock() -> datetime:
        return ahead

    worker = app.worker(executor="thread", burst=True, install_signals=False, clock=clock)
    assert worker.run() == 0
    assert sorted(ran) == [0, 1, 2]
    assert all(h.status() is JobState.SUCCEEDED for h in handles)
