"""RELIABILITY 28, retry policy: backoff always within [base, max_delay]; a job that always
fails runs exactly max_attempts times, then is dead."""

from __future__ import annotations

import math
import random
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import offload
from offload.core.errors import ConfigurationError
from offload.core.options import RetryPolicy
from offload.core.retry import Decision, RunEnd, next_state
from offload.core.states import JobState


@st.composite
def policies(draw: st.DrawFn, max_factor: float = 1e6) -> RetryPolicy:
    base = draw(st.floats(0, 1e4, allow_nan=False, allow_infinity=False))
    max_delay = draw(st.floats(base, 1e6, allow_nan=False, allow_infinity=False))
    return RetryPolicy(
        max_attempts=draw(st.integers(1, 1000)),
        base=base,
        factor=draw(
            st.floats(1e-6, max_factor, allow_nan=False, allow_infinity=False, exclude_min=False)
        ),
        max_delay=max_delay,
        jitter=draw(st.floats(0, 1)),
    )


@settings(max_examples=500, deadline=None)
@given(policy=policies(max_factor=10.0), attempt=st.integers(-5, 10_000), seed=st.integers())
def test_backoff_stays_within_base_and_max(policy: RetryPolicy, attempt: int, seed: int) -> None:
    delay = policy.delay(attempt, random.Random(seed))
    assert math.isfinite(delay)
    assert policy.base <= delay <= policy.max_delay


@settings(max_examples=500, deadline=None)
@given(policy=policies(), attempt=st.integers(-5, 10_000), seed=st.integers())
def test_backoff_stays_within_bounds_for_any_valid_factor(
    policy: RetryPolicy, attempt: int, seed: int
) -> None:
    """Every policy the constructor accepts must give a delay (no OverflowError for a large
    factor at a late attempt: the worker computes this while recording a failure)."""
    delay = policy.delay(attempt, random.Random(seed))
    assert math.isfinite(delay)
    assert policy.base <= delay <= policy.max_delay


@settings(max_examples=300, deadline=None)
@given(policy=policies(max_factor=10.0), attempt=st.integers(1, 200))
def test_without_jitter_backoff_is_exact_and_never_shrinks(
    policy: RetryPolicy, attempt: int
) -> None:
    exact = RetryPolicy(
        max_attempts=policy.max_attempts,
        base=policy.base,
        factor=policy.factor,
        max_delay=policy.max_delay,
        jitter=0.0,
    )
    expected = min(exact.max_delay, max(exact.base, exact.base * exact.factor ** (attempt - 1)))
    assert exact.delay(attempt) == pytest.approx(expected, rel=1e-9)
    if exact.factor >= 1:
        assert exact.delay(attempt + 1) >= exact.delay(attempt)


def test_jitter_spreads_delays_around_the_nominal_value() -> None:
    policy = RetryPolicy(base=1.0, factor=2.0, max_delay=1000.0, jitter=0.5)
    rng = random.Random(7)
    delays = [policy.delay(4, rng) for _ in range(500)]  # nominal 8 s
    assert min(delays) >= 4.0
    assert max(delays) <= 12.0
    assert len({round(d, 6) for d in delays}) > 100
    assert 7.0 < sum(delays) / len(delays) < 9.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": -1},
        {"max_attempts": True},
        {"max_attempts": 2.0},
        {"base": -1.0},
        {"base": math.nan},
        {"base": math.inf},
        {"factor": 0.0},
        {"factor": -2.0},
        {"factor": math.inf},
        {"max_delay": -1.0},
        {"max_delay": math.nan},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"jitter": True},
        {"base": 10.0, "max_delay": 5.0},
        {"base": "1"},
    ],
    ids=str,
)
def test_invalid_policies_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)


# -- the decision after one run (offload.core.retry) ---------------------------------------

NO_JITTER = RetryPolicy(max_attempts=5, base=2.0, factor=3.0, max_delay=100.0, jitter=0.0)


@pytest.mark.parametrize(
    ("attempt", "max_attempts", "end", "expected"),
    [
        (1, 3, RunEnd.SUCCEEDED, Decision(JobState.SUCCEEDED)),
        (3, 3, RunEnd.SUCCEEDED, Decision(JobState.SUCCEEDED)),
        (1, 3, RunEnd.FAILED, Decision(JobState.RETRYING, 2.0)),
        (2, 3, RunEnd.FAILED, Decision(JobState.RETRYING, 6.0)),
        (3, 3, RunEnd.FAILED, Decision(JobState.DEAD)),
        (4, 3, RunEnd.FAILED, Decision(JobState.DEAD)),  # max_attempts lowered meanwhile
        (1, 1, RunEnd.FAILED, Decision(JobState.DEAD)),
        (1, 3, RunEnd.PERMANENT, Decision(JobState.DEAD)),
        (1, 3, RunEnd.CANCELLED, Decision(JobState.CANCELLED)),
        (3, 3, RunEnd.CANCELLED, Decision(JobState.CANCELLED)),  # cancel wins over dead
    ],
    ids=str,
)
def test_next_state_after_a_run(
    attempt: int, max_attempts: int, end: RunEnd, expected: Decision
) -> None:
    assert next_state(attempt, max_attempts, NO_JITTER, end) == expected


def test_the_job_s_max_attempts_decides_not_the_policy_s() -> None:
    """An enqueue may override max_attempts: the job row's value is the one that counts."""
    assert next_state(5, 10, NO_JITTER, RunEnd.FAILED).state is JobState.RETRYING
    assert next_state(2, 2, NO_JITTER, RunEnd.FAILED).state is JobState.DEAD


@settings(max_examples=300, deadline=None)
@given(
    policy=policies(max_factor=10.0),
    attempt=st.integers(1, 2000),
    max_attempts=st.integers(1, 2000),
    seed=st.integers(),
)
def test_a_failure_retries_within_the_policy_s_bounds_until_attempts_are_used_up(
    policy: RetryPolicy, attempt: int, max_attempts: int, seed: int
) -> None:
    decision = next_state(attempt, max_attempts, policy, RunEnd.FAILED, random.Random(seed))
    if attempt < max_attempts:
        assert decision.state is JobState.RETRYING
        assert decision.delay is not None
        assert policy.base <= decision.delay <= policy.max_delay
        again = next_state(attempt, max_attempts, policy, RunEnd.FAILED, random.Random(seed))
        assert again == decision  # pure: same inputs, same answer
    else:
        assert decision == Decision(JobState.DEAD)


# -- end to end: a task that always fails ------------------------------------------------


def _always_failing(app: offload.App, max_attempts: int, base: float, max_delay: float) -> Any:
    runs: list[int] = []

    @app.task(
        name="always_fails",
        retry=RetryPolicy(max_attempts=max_attempts, base=base, max_delay=max_delay, jitter=0),
    )
    def always_fails(tag: str) -> None:
        runs.append(1)
        raise ValueError(f"failing on purpose: {tag}")

    return always_fails, runs


def _assert_dead_after(job: offload.Job, runs: list[int], max_attempts: int) -> None:
    assert len(runs) == max_attempts, f"ran {len(runs)} times, max_attempts={max_attempts}"
    assert job.state is JobState.DEAD, job
    assert job.attempt == max_attempts
    assert [e["attempt"] for e in job.errors] == list(range(1, max_attempts + 1))
    assert {e["type"] for e in job.errors} == {"ValueError"}
    assert all("failing on purpose: x" in e["message"] for e in job.errors)
    assert all(e["traceback"] for e in job.errors)


@pytest.mark.parametrize("max_attempts", [1, 3, 5])
def test_always_failing_job_runs_exactly_max_attempts_times_in_burst(
    app: offload.App, max_attempts: int
) -> None:
    """Zero backoff: every retry is due at once, so a burst worker must run them all."""
    task, runs = _always_failing(app, max_attempts, base=0.0, max_delay=0.0)
    handle = task.enqueue("x")
    worker = app.worker(executor="thread", burst=True, install_signals=False, concurrency=1)
    assert worker.run() == 0
    _assert_dead_after(handle.job(), runs, max_attempts)


def test_always_failing_job_with_backoff_runs_exactly_max_attempts_times(
    app: offload.App,
) -> None:
    """Real backoff delays, with a long-running worker stopped once the job is dead."""
    max_attempts = 4
    task, runs = _always_failing(app, max_attempts, base=0.05, max_delay=0.2)
    handle = task.enqueue("x")
    worker = app.worker(executor="thread", install_signals=False, concurrency=2, poll_interval=0.02)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        job = handle.wait(timeout=20)
    finally:
        worker.stop()
        thread.join(20)
    assert not thread.is_alive()
    _assert_dead_after(job, runs, max_attempts)
    gaps = [b["at"] - a["at"] for a, b in zip(job.errors, job.errors[1:], strict=False)]
    assert all(gap >= 0.05 for gap in gaps), gaps  # never sooner than the base delay
    time.sleep(0.1)
    assert len(runs) == max_attempts  # nothing ran after it was dead
