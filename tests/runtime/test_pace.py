"""How many jobs a slot holds, from how long runs take (`Pace`)."""

from __future__ import annotations

import pytest

from offload.runtime.executor import MAX_DEPTH, PIPELINE_DEPTH, QUEUED_WORK, SHORT_RUN, Pace


@pytest.mark.parametrize(
    ("run_time", "depth"),
    [
        (1.0, 1),  # runs not known short yet
        (SHORT_RUN, 1),
        (SHORT_RUN * 0.99, PIPELINE_DEPTH),
        (QUEUED_WORK / 64, 64),  # as many as take QUEUED_WORK
        (QUEUED_WORK / MAX_DEPTH, MAX_DEPTH),
        (QUEUED_WORK / 1000, MAX_DEPTH),  # tiny runs: never more than MAX_DEPTH
        (0.0, MAX_DEPTH),
    ],
)
def test_a_slot_holds_about_queued_work_of_short_runs(run_time: float, depth: int) -> None:
    assert Pace(run_time).depth() == depth


def test_the_pace_follows_recent_runs() -> None:
    pace = Pace()
    for _ in range(60):
        pace.record(0.0001)
    assert pace.depth() == MAX_DEPTH
    for _ in range(60):
        pace.record(0.5)
    assert pace.depth() == 1
