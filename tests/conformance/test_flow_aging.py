"""Priorities without starvation: claims take jobs by virtual deadline, sort_at = run_at -
priority x the queue's aging, so priority is a head start in seconds that waiting earns
back. A retry or a rescue keeps the head start, a new aging re-orders waiting jobs, and
aging 0 is first come, first served."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest

import offload
from offload.backends.base import Backend
from offload.backends.params import ClaimParams, FinishParams, Outcome, RescueParams
from offload.core.errors import ConfigurationError
from offload.core.flow import MAX_AGING, QueuePolicy
from offload.core.states import JobState
from tests.conformance.helpers import (
    SHORT_LEASE,
    RawDB,
    claim_one,
    error_json,
    expire_lease,
    insert,
)


def due(backend: Backend, ago: float, priority: int, queue: str = "q") -> int:
    """One job of `priority` that became due `ago` seconds before the database's now (and
    50 ms more: a stored clock reading may round up past the next claim's in its millisecond)."""
    at = backend.now().timestamp() - ago - 0.05
    return insert(backend, 1, queue=queue, priority=priority, run_at=at)[0]


def claim_order(backend: Backend, n: int, queue: str = "q") -> list[int]:
    """The ids of the next `n` claims of one job each."""
    return [claim_one(backend, queue=queue).id for _ in range(n)]


def head_start(db_url: str, job_id: int) -> float:
    """run_at - sort_at of a stored job, in seconds."""
    row = RawDB(db_url).job_row(job_id)
    gap: Any = row["run_at"] - row["sort_at"]
    return float(gap.total_seconds()) if not isinstance(gap, float) else gap


def test_higher_priority_first_among_jobs_due_together(backend: Backend) -> None:
    at = backend.now().timestamp() - 1.0
    ids = {p: insert(backend, 1, queue="q", priority=p, run_at=at)[0] for p in (0, 5, -3, 2)}
    assert claim_order(backend, 4) == [ids[5], ids[2], ids[0], ids[-3]]


def test_a_batch_claim_takes_the_earliest_virtual_deadlines(backend: Backend) -> None:
    backend.queues.set("q", QueuePolicy(aging=1.0))
    old_low = due(backend, 30, 0)  # deadline now - 30
    high = due(backend, 0, 10)  # now - 10
    new_low = due(backend, 0, 0)  # now
    mid = due(backend, 5, 3)  # now - 8
    claimed = backend.claims.claim(ClaimParams("w", "q", 3, 30.0))
    assert {j.id for j in claimed} == {old_low, high, mid}
    assert backend.jobs.get(new_low).state is JobState.AVAILABLE


def test_a_low_job_due_long_enough_before_a_high_one_goes_first(backend: Backend) -> None:
    backend.queues.set("q", QueuePolicy(aging=2.0))  # priority 5 = a 10 s head start
    behind = due(backend, 4, 0)  # due 4 s before: overtaken (4 < 5 x 2)
    ahead = due(backend, 25, 0)  # due 25 s before: not overtaken (25 > 5 x 2)
    high = due(backend, 0, 5)
    assert claim_order(backend, 3) == [ahead, high, behind]


def test_the_default_aging_is_60_seconds_per_priority_step(backend: Backend) -> None:
    backend.queues.set("other", QueuePolicy())  # a policy elsewhere changes nothing here
    overtaken = due(backend, 110, 0, queue="q")
    first = due(backend, 130, 0, queue="q")
    high = due(backend, 0, 2, queue="q")  # 120 s of head start
    assert claim_order(backend, 3) == [first, high, overtaken]


def test_a_retry_keeps_the_jobs_head_start(backend: Backend, db_url: str) -> None:
    backend.queues.set("q", QueuePolicy(aging=1.0))
    high = due(backend, 0, 10)
    job = claim_one(backend, queue="q")
    assert job.id == high
    before = head_start(db_url, high)
    assert before == pytest.approx(10.0, abs=1e-3)
    outcome = Outcome(high, job.attempt, JobState.RETRYING, error=error_json(), delay=0.0)
    assert backend.claims.finish(FinishParams("w1", [outcome])) == []
    assert head_start(db_url, high) == pytest.approx(before, abs=1e-3)
    low = due(backend, 5, 0)  # due 5 s ago: still behind the retried job's 10 s start
    assert claim_order(backend, 2) == [high, low]


def test_a_rescue_keeps_the_jobs_head_start(backend: Backend, db_url: str) -> None:
    backend.queues.set("q", QueuePolicy(aging=1.0))
    high = due(backend, 0, 10)
    job = backend.claims.claim(ClaimParams("w1", "q", 1, SHORT_LEASE))[0]
    expire_lease(backend, job)
    assert backend.claims.rescue(RescueParams()) == [high]
    assert head_start(db_url, high) == pytest.approx(10.0, abs=1e-3)
    low = due(backend, 5, 0)
    assert claim_order(backend, 2) == [high, low]


def test_an_explicit_retry_keeps_the_jobs_head_start(
    app: offload.App, backend: Backend, db_url: str
) -> None:
    backend.queues.set("q", QueuePolicy(aging=1.0))
    high = due(backend, 0, 10)
    job = claim_one(backend, queue="q")
    dead = Outcome(high, job.attempt, JobState.DEAD, error=error_json())
    assert backend.claims.finish(FinishParams("w1", [dead])) == []
    assert app.retry(high).state is JobState.AVAILABLE
    assert head_start(db_url, high) == pytest.approx(10.0, abs=1e-3)


def test_a_new_aging_reorders_the_waiting_jobs(backend: Backend, db_url: str) -> None:
    low = due(backend, 100, 0)
    high = due(backend, 0, 2)  # default aging: 120 s of head start, ahead of low
    running = due(backend, 0, 9)
    assert claim_one(backend, queue="q").id == running
    backend.queues.set("q", QueuePolicy(aging=10.0))  # now 20 s: low is ahead
    assert head_start(db_url, high) == pytest.approx(20.0, abs=1e-3)
    assert head_start(db_url, running) == pytest.approx(9 * 60.0, abs=1e-3)  # started: kept
    assert claim_order(backend, 2) == [low, high]


def test_the_same_aging_set_again_rewrites_nothing(backend: Backend, db_url: str) -> None:
    backend.queues.set("q", QueuePolicy(aging=5.0))
    ids = [due(backend, 0, p) for p in (1, 2)]
    raw = RawDB(db_url)
    before = raw.all_rows()
    backend.queues.set("q", QueuePolicy(aging=5.0, max_depth=10))
    assert raw.all_rows() == before
    assert [head_start(db_url, i) for i in ids] == pytest.approx([5.0, 10.0], abs=1e-3)


def test_aging_zero_is_first_come_first_served(backend: Backend) -> None:
    backend.queues.set("q", QueuePolicy(aging=0.0))
    order = [due(backend, 10, 0), due(backend, 5, 9), due(backend, 3, -9), due(backend, 0, 99)]
    assert claim_order(backend, 4) == order


@pytest.mark.parametrize("aging", [-1.0, -0.001, math.nan, math.inf, MAX_AGING * 2, "5", True])
def test_bad_aging_is_refused_and_nothing_is_stored(
    app: offload.App, backend: Backend, aging: Any
) -> None:
    with pytest.raises(ConfigurationError, match="aging"):
        app.queue("q", aging=aging)
    with pytest.raises(ConfigurationError, match="aging"):
        QueuePolicy(aging=aging).check()
    assert backend.queues.get("q") is None
    assert "q" not in app.queues


def test_claim_order_ties_break_by_id(backend: Backend) -> None:
    at = datetime.now().timestamp() - 1
    ids = insert(backend, 5, queue="q", priority=1, run_at=at)
    assert claim_order(backend, 5) == ids


def test_one_claim_of_many_jobs_lists_them_by_virtual_deadline(backend: Backend) -> None:
    """A worker starts a claimed batch in the order the claim took it: a long-waiting low
    job comes before a new high one in the same batch (the default aging, 60 s a step)."""
    old_low = due(backend, ago=3600, priority=0)  # deadline now - 3600 s
    new_high = due(backend, ago=0, priority=10)  # deadline now - 600 s
    new_low = due(backend, ago=0, priority=0)  # deadline now
    jobs = backend.claims.claim(ClaimParams("w1", "q", 3, 30.0))
    assert [job.id for job in jobs] == [old_low, new_high, new_low]
