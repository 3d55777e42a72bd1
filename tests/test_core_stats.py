"""`offload.core.stats`: the wait histogram's bins and quantiles, and charts of buckets."""

from __future__ import annotations

import math
import random

import pytest

from offload.core.stats import Tally, bin_bounds, chart, latency_bin, quantile


@pytest.mark.parametrize("seconds", [0.0, 0.0005, 0.001, 0.0015, 0.3, 1.0, 59.9, 3600.0, 1e7])
def test_a_wait_falls_within_its_bins_bounds(seconds: float) -> None:
    low, high = bin_bounds(latency_bin(seconds))
    assert low <= seconds < high


def test_quantiles_are_within_a_bins_resolution() -> None:
    rng = random.Random(7)
    waits = sorted(rng.lognormvariate(-1, 1.5) for _ in range(5000))
    tally = Tally()
    for wait in waits:
        tally.count("started", wait)
    for q in (0.5, 0.95):
        true = waits[math.ceil(q * len(waits)) - 1]
        found = quantile(tally.bins, q, tally.latency_max)
        assert found is not None
        assert true / 2**0.25 <= found <= true * 2**0.25, (q, true, found)
    assert quantile({}, 0.5, None) is None
    assert quantile({60: 1}, 0.5, 1e9) == bin_bounds(60)[0]  # the open last bin
    assert quantile({30: 1}, 0.5, 0.01) == 0.01  # never above the largest wait


def test_counts_by_kind() -> None:
    tally = Tally()
    for kind in ("enqueued", "started", "succeeded", "retrying", "dead", "progress"):
        tally.count(kind, None)
    assert (tally.enqueued, tally.started, tally.succeeded, tally.failed, tally.dead) == (
        1,
        1,
        1,
        2,
        1,
    )


def test_a_chart_adds_minutes_into_larger_buckets_and_fills_gaps() -> None:
    rows = [(600.0, Tally(enqueued=1)), (660.0, Tally(enqueued=2)), (960.0, Tally(enqueued=4))]
    points = chart(rows, end=1000.0, points=3, bucket_seconds=300)
    assert [p.at.timestamp() for p in points] == [300.0, 600.0, 900.0]
    assert [p.enqueued for p in points] == [0, 3, 4]
