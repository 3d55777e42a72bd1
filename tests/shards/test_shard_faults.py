"""One shard failing in the middle of an operation over several: what the others did is
given back (claims) or remembered (outcomes), never left to a lease running out."""

from __future__ import annotations

from typing import Any

import pytest

import offload
from offload.backends.params import (
    ClaimParams,
    FinishParams,
    Outcome,
    SweepTakeParams,
)
from offload.backends.shards import ShardedBackend
from offload.core.errors import BackendUnavailable
from offload.core.flow import QueuePolicy
from offload.core.states import JobState
from tests.conformance.helpers import insert


def _down(*_: Any) -> Any:
    raise BackendUnavailable("shard two: connection refused (simulated)")


def _backend(app: offload.App) -> ShardedBackend:
    assert isinstance(app.backend, ShardedBackend)
    return app.backend


def test_a_claim_whose_later_shard_fails_gives_back_what_it_took(
    sharded: offload.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = _backend(sharded)
    ids = insert(backend, 2, queue="default")  # on shard one, asked first
    monkeypatch.setattr(backend.members[1].backend.claims, "take", _down)
    with pytest.raises(BackendUnavailable, match="simulated"):
        backend.claims.take(ClaimParams("w-probe", "default", 10, 30.0))
    for job_id in ids:  # not left running under a worker that never got them
        job = backend.jobs.get(job_id)
        assert (job.state, job.worker, job.attempt) == (JobState.AVAILABLE, None, 0)
    monkeypatch.undo()
    taken = backend.claims.take(ClaimParams("w-next", "default", 10, 30.0)).jobs
    assert sorted(job.id for job in taken) == ids
    assert {(job.worker, job.attempt) for job in taken} == {("w-next", 1)}


def test_a_sweep_take_whose_later_shard_fails_gives_back_what_it_took(
    sharded: offload.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = _backend(sharded)
    ids = insert(backend, 5, queue="q", priority=0, task="hooked")  # on shard one
    backend.queues.set("q", QueuePolicy(shed_priority=1, shed_depth=4, resume_depth=2).check())
    assert sorted(backend.sweep.shed("q")) == ids
    monkeypatch.setattr(backend.members[1].backend.sweep, "take", _down)
    with pytest.raises(BackendUnavailable, match="simulated"):
        backend.sweep.take(SweepTakeParams("sweeper", "q", "hooked", 10, 30.0))
    for job_id in ids:
        job = backend.jobs.get(job_id)
        assert (job.state, job.worker, job.attempt) == (JobState.SHED, None, 0)


def test_outcomes_one_shard_recorded_before_another_failed_are_not_lost_on_the_retry(
    sharded: offload.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = _backend(sharded)
    first = insert(backend, 1, queue="default")[0]  # shard one
    second = insert(backend, 1, queue="reports")[0]  # shard two
    one = backend.claims.take(ClaimParams("w", "default", 1, 30.0)).jobs[0]
    two = backend.claims.take(ClaimParams("w", "reports", 1, 30.0)).jobs[0]
    assert (one.id, two.id) == (first, second)
    outcomes = [Outcome(job.id, job.attempt, JobState.SUCCEEDED) for job in (one, two)]
    finish = backend.members[1].backend.claims.finish
    monkeypatch.setattr(backend.members[1].backend.claims, "finish", _down)
    with pytest.raises(BackendUnavailable):
        backend.claims.finish(FinishParams("w", outcomes))
    assert backend.jobs.get(first).state is JobState.SUCCEEDED  # shard one committed
    monkeypatch.setattr(backend.members[1].backend.claims, "finish", finish)
    assert backend.claims.finish(FinishParams("w", outcomes)) == []  # the retry: none lost
    assert backend.jobs.get(second).state is JobState.SUCCEEDED
