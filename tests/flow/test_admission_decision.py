"""The admission decision and retry_after as pure functions (no database)."""

from __future__ import annotations

import pytest

from offload.core.errors import Overloaded, QueueFull
from offload.core.flow import (
    ADMIT,
    RETRY_AFTER_CEILING,
    RETRY_AFTER_FLOOR,
    SHED,
    DrainMeter,
    Load,
    QueuePolicy,
    Refusal,
    admit,
    retry_after,
)


def refusal(decision: object) -> Refusal:
    assert isinstance(decision, Refusal), decision
    return decision


def test_max_depth_is_exact_at_the_edge_and_counts_the_whole_batch() -> None:
    policy = QueuePolicy(max_depth=10)
    assert admit(policy, Load(9), 1, 0) == ADMIT
    full = refusal(admit(policy, Load(10), 1, 0))
    assert (full.full, full.depth, full.limit, full.excess) == (True, 10, 10, 1)
    assert admit(policy, Load(7), 3, 0) == ADMIT
    assert refusal(admit(policy, Load(7), 4, 0)).excess == 1


def test_max_depth_refuses_every_priority() -> None:
    policy = QueuePolicy(max_depth=5, admit_depth=2, shed_depth=3, shed_priority=0)
    assert refusal(admit(policy, Load(5), 1, 1000)).full


def test_admit_depth_refuses_low_priorities_and_admits_high_ones_up_to_max_depth() -> None:
    policy = QueuePolicy(max_depth=10, admit_depth=4, admit_priority=5)
    assert admit(policy, Load(3), 1, 0) == ADMIT
    low = refusal(admit(policy, Load(4), 1, 4))
    assert not low.full
    assert low.reason == "4 jobs waiting, admit_depth 4"
    assert admit(policy, Load(4), 1, 5) == ADMIT
    assert admit(policy, Load(9), 1, 5) == ADMIT
    assert refusal(admit(policy, Load(10), 1, 5)).full


def test_max_wait_refuses_low_priorities_with_the_figures() -> None:
    policy = QueuePolicy(max_wait=30.0)
    assert admit(policy, Load(1, 29.0), 1, 0) == ADMIT
    assert admit(policy, Load(1, None), 1, 0) == ADMIT
    late = refusal(admit(policy, Load(1, 45.0), 1, 0))
    assert late.reason == "oldest job waiting 45.0 s, max_wait 30 s"
    assert not late.per_job and late.excess == pytest.approx(15.0)
    assert admit(policy, Load(1, 45.0), 1, 1) == ADMIT


def test_overload_shed_stores_instead_of_refusing() -> None:
    policy = QueuePolicy(
        max_depth=10, admit_depth=2, overload="shed", shed_depth=8, shed_priority=0
    ).check()
    assert admit(policy, Load(2), 1, 0) == SHED
    assert admit(policy, Load(2), 1, 1) == ADMIT
    assert refusal(admit(policy, Load(10), 1, 0)).full


def test_shed_depth_sheds_new_jobs_below_shed_priority() -> None:
    policy = QueuePolicy(shed_depth=3, shed_priority=2).check()
    assert admit(policy, Load(2), 1, 0) == ADMIT
    assert admit(policy, Load(3), 1, 1) == SHED
    assert admit(policy, Load(3), 1, 2) == ADMIT
    assert admit(policy, Load(100), 1, 2) == ADMIT


def test_retry_after_from_the_drain_rate_within_floor_and_ceiling() -> None:
    assert retry_after(10, 0.0) == RETRY_AFTER_CEILING
    assert retry_after(10, 1.0) == 10.0
    assert retry_after(10, 5.0) == 2.0
    assert retry_after(10, 1000.0) == RETRY_AFTER_FLOOR
    assert retry_after(10_000, 1.0) == RETRY_AFTER_CEILING
    assert retry_after(10, float("nan")) == RETRY_AFTER_CEILING


def test_refusals_become_the_named_errors() -> None:
    full = refusal(admit(QueuePolicy(max_depth=2), Load(2), 3, 0)).error("mail", 1.5)
    assert isinstance(full, QueueFull)
    assert (full.queue, full.depth, full.limit, full.retry_after) == ("mail", 2, 2, 2.0)
    busy = refusal(admit(QueuePolicy(admit_depth=2), Load(5), 1, 0)).error("mail", 0.0)
    assert isinstance(busy, Overloaded)
    assert busy.reason == "5 jobs waiting, admit_depth 2"
    assert busy.retry_after == RETRY_AFTER_CEILING


def test_the_drain_meter_counts_per_queue_over_its_window() -> None:
    meter = DrainMeter(started=1000.0, window=60.0)
    for i in range(30):
        meter.record("mail", 1000.0 + i)
    meter.record("sms", 1010.0, n=5)
    assert meter.rates(1030.0) == {"mail": 1.0, "sms": pytest.approx(5 / 30, abs=1e-6)}
    # 75 s in: the window is the last 60 s, seconds 1016-1029 of mail.
    assert meter.rates(1075.0) == {"mail": pytest.approx(14 / 60, abs=1e-6)}
    assert meter.rates(1200.0) == {}
