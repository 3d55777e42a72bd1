"""One shard failing in the middle of an operation over several: what the others did is
given back (claims) or remembered (outcomes), never left to a lease running out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import offload
from offload.backends.params import (
    ClaimParams,
    FinishParams,
    JobPruneParams,
    Outcome,
    RescueParams,
    SweepReadmitParams,
    SweepTakeParams,
)
from offload.backends.shards import ShardedBackend
from offload.core.errors import BackendUnavailable
from offload.core.flow import QueuePolicy
from offload.core.states import JobState
from tests.conformance.helpers import claim_one, insert


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


def test_a_rescue_whose_first_shard_fails_still_rescues_the_others_then_raises(
    sharded: offload.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Home unreachable for the rescue: the expired lease on shard two is rescued all the
    same, and the failure is raised after (the holder gives the duty up, an outage is
    ridden out)."""
    backend = _backend(sharded)
    [job_id] = insert(backend, 1, queue="reports")  # on shard two
    claim_one(backend, "w-dead", "reports", lease=0.05)
    time.sleep(0.2)
    monkeypatch.setattr(backend.members[0].backend.claims, "rescue", _down)
    with pytest.raises(BackendUnavailable, match="simulated"):
        backend.claims.rescue(RescueParams())
    assert backend.jobs.get(job_id).state == JobState.AVAILABLE  # was RUNNING, lease expired


#: Every maintenance fan-out over the shards, with the call that makes it.
FAN_OUTS: dict[str, tuple[str, str, Callable[[Any], object]]] = {
    "rescue": ("claims", "rescue", lambda b: b.claims.rescue(RescueParams())),
    "jobs.prune": ("jobs", "prune", lambda b: b.jobs.prune(JobPruneParams({}))),
    "workers.prune": ("workers", "prune", lambda b: b.workers.prune(86400.0)),
    "sweep.shed": ("sweep", "shed", lambda b: b.sweep.shed("q")),
    "sweep.readmit": (
        "sweep",
        "readmit",
        lambda b: b.sweep.readmit(SweepReadmitParams("q", [], None)),
    ),
    "events.prune": ("events", "prune", lambda b: b.events.prune(86400.0)),
    "stats.roll": ("stats", "roll", lambda b: b.stats.roll()),
    "stats.prune": ("stats", "prune", lambda b: b.stats.prune(86400.0)),
    "topics.prune": ("topics", "prune", lambda b: b.topics.prune()),
}


@pytest.mark.parametrize("fan_out", sorted(FAN_OUTS))
def test_every_maintenance_fan_out_tries_every_shard_before_raising(
    sharded: offload.App, monkeypatch: pytest.MonkeyPatch, fan_out: str
) -> None:
    backend = _backend(sharded)
    store, method, call = FAN_OUTS[fan_out]
    reached: list[str] = []
    second = getattr(backend.members[1].backend, store)
    real = getattr(second, method)

    def counted(*args: Any) -> Any:
        reached.append("two")
        return real(*args)

    monkeypatch.setattr(getattr(backend.members[0].backend, store), method, _down)
    monkeypatch.setattr(second, method, counted)
    with pytest.raises(BackendUnavailable, match="simulated"):
        call(backend)
    assert reached == ["two"]
