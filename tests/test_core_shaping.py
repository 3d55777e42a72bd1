"""Work shaping decided without a database: `decide` by position, and unique keys."""

from __future__ import annotations

import inspect

import pytest

from offload.core.errors import DuplicateJob, IdempotencyConflict
from offload.core.shaping import NEW, Idempotent, Outcome, Unique, decide
from offload.core.states import JobState


def test_unique_keys_by_position_against_holders_and_earlier_calls() -> None:
    calls: list[tuple[str, str, str | None, str | None]] = [
        ("[1]", "{}", None, "a"),
        ("[2]", "{}", None, "b"),
        ("[3]", "{}", None, "a"),
        ("[4]", "{}", None, None),
    ]
    assert decide("t", calls, {"b": 7}, {}, "return") == [
        NEW,
        Outcome(held=7),
        Outcome(first=0),
        NEW,
    ]


def test_on_duplicate_raise_names_key_holder_and_position() -> None:
    with pytest.raises(DuplicateJob) as held:
        decide("t", [("[]", "{}", None, "k")], {"k": 3}, {}, "raise")
    assert (held.value.key, held.value.job_id, held.value.position) == ("k", 3, None)
    calls = [("[]", "{}", None, "k"), ("[]", "{}", None, "k")]
    with pytest.raises(DuplicateJob) as repeated:
        decide("t", calls, {}, {}, "raise")
    assert (repeated.value.job_id, repeated.value.position) == (None, 1)


def test_an_idempotency_key_answers_with_its_job_for_the_same_payload_only() -> None:
    holder = {"k": Idempotent(5, "t", "[1]", '{"a":1,"b":2}')}
    same = ("[1]", '{"b":2,"a":1}', "k", None)  # key order aside, the same kwargs
    assert decide("t", [same], {}, holder, "return") == [Outcome(held=5)]
    other_args = ("[2]", '{"a":1,"b":2}', "k", None)
    other_types = ("[true]", '{"a":1.0,"b":2}', "k", None)  # equal in Python, not in JSON
    for task, call in (("t", other_args), ("t", other_types), ("other", same)):
        with pytest.raises(IdempotencyConflict) as info:
            decide(task, [call], {}, holder, "return")
        assert (info.value.key, info.value.job_id) == ("k", 5)


def test_an_idempotency_key_repeated_in_a_batch_points_at_its_first_call() -> None:
    calls = [("[1]", "{}", "k", None), ("[1]", "{}", "k", None)]
    assert decide("t", calls, {}, {}, "return") == [NEW, Outcome(first=0)]
    with pytest.raises(IdempotencyConflict, match="an earlier job of this batch"):
        decide("t", [calls[0], ("[2]", "{}", "k", None)], {}, {}, "return")


def test_a_derived_key_binds_the_arguments_to_the_signature() -> None:
    def f(a: int, b: int = 2, *rest: int, **extra: int) -> None: ...

    sig, rule = inspect.signature(f), Unique()
    key = rule.key_for("t", sig, (1,), {})
    assert key.startswith("t:") and len(key) == 42
    assert rule.key_for("t", sig, (), {"b": 2, "a": 1}) == key
    assert rule.key_for("t", sig, (1, 2), {}) == key
    assert rule.key_for("t", sig, (1, 3), {}) != key
    assert rule.key_for("u", sig, (1,), {}) != key
    assert Unique(key="fixed").key_for("t", sig, (1,), {}) == "fixed"


def test_the_default_states_depend_on_the_period() -> None:
    assert JobState.SUCCEEDED not in Unique().held_in
    assert JobState.SHED in Unique().held_in and JobState.WAITING in Unique().held_in
    assert set(Unique(period=60).held_in) == set(JobState)
    assert Unique(states=("running", "available")).held_in == (
        JobState.AVAILABLE,
        JobState.RUNNING,
    )
