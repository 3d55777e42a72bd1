"""The dashboard's job queries: the error_type and args_contains filters (the same answers
on both backends), counting a selection, and bulk operations walked in bounded batches."""

from __future__ import annotations

from typing import Any

import pytest

import offload
from offload.backends.base import Backend
from offload.backends.params import (
    ClaimParams,
    FinishParams,
    JobFilter,
    JobIdsParams,
    Outcome,
)
from offload.core.containment import args_match
from offload.core.errors import ValidationError
from offload.core.states import JobState
from tests.conformance.helpers import error_json, insert, insert_jobs, new_job

#: Jobs by name: (args, kwargs), shapes chosen to tell containment from equality,
#: numbers from strings, booleans from numbers, and top-level from nested.
SHAPES: dict[str, tuple[list[Any], dict[str, Any]]] = {
    "int5": ([5], {}),
    "str5": (["5"], {}),
    "kw_user5": ([], {"user": 5, "x": 1}),
    "obj_user5": ([{"user": 5, "tags": ["a", "b"], "meta": {"k": {"deep": True}}}], {}),
    "array_and_null": ([["a", "b"], None], {}),
    "kw_null": ([], {"x": None}),
    "float5": ([5.0], {}),
    "true": ([True], {}),
    "one": ([1], {}),
    "nested": ([], {"nested": [[1, 2], [3]]}),
    "nul": (["a\x00b"], {"user": 5}),
    "unicode": (["é", 7], {"name": "Zoë"}),
}

#: A pattern and the jobs it finds.
CASES: list[tuple[Any, set[str]]] = [
    (5, {"int5", "float5"}),
    (5.0, {"int5", "float5"}),
    ("5", {"str5"}),
    ({"user": 5}, {"kw_user5", "obj_user5"}),
    ({"user": "5"}, set()),
    ({"user": 5, "x": 1}, {"kw_user5"}),
    ({"meta": {"k": {}}}, {"obj_user5"}),
    ({"meta": {"k": {"deep": True}}}, {"obj_user5"}),
    ({"meta": {"k": {"deep": 1}}}, set()),
    ({"tags": ["b"]}, {"obj_user5"}),
    (["a"], {"array_and_null"}),
    (["b", "a", "a"], {"array_and_null"}),
    ("a", set()),  # inside an array argument, not an argument itself
    ({"x": None}, {"kw_null"}),
    (True, {"true"}),
    (1, {"one"}),
    ({"nested": [[2]]}, {"nested"}),
    ({"nested": [2]}, set()),
    ([], {"array_and_null"}),
    ("é", {"unicode"}),
    ({"name": "Zoë"}, {"unicode"}),
    ({}, set(SHAPES) - {"nul"}),  # every kwargs object contains {}; NUL matches nothing
]


@pytest.fixture
def shaped(backend: Backend) -> dict[str, int]:
    jobs = [new_job("shape", args=a, kwargs=k) for a, k in SHAPES.values()]
    ids = insert_jobs(backend, jobs)
    return dict(zip(SHAPES, ids, strict=True))


@pytest.mark.parametrize(("pattern", "expected"), CASES, ids=[repr(c[0]) for c in CASES])
def test_args_contains_finds_the_same_jobs_on_each_backend(
    app: offload.App, shaped: dict[str, int], pattern: Any, expected: set[str]
) -> None:
    found = {job.id for job in app.jobs(args_contains=pattern, limit=100)}
    assert found == {shaped[name] for name in expected}
    assert app.count_jobs(args_contains=pattern) == len(expected)


def test_the_cases_agree_with_the_python_rule() -> None:
    """The expectations above are `args_match`'s (SQLite runs it; PostgreSQL runs @>)."""
    import orjson

    for pattern, expected in CASES:
        text = orjson.dumps(pattern).decode()
        matched = {
            name
            for name, (a, k) in SHAPES.items()
            if args_match(orjson.dumps(a).decode(), orjson.dumps(k).decode(), text)
        }
        assert matched == expected, pattern


def test_args_contains_combines_with_the_other_filters(app: offload.App, backend: Backend) -> None:
    a = insert_jobs(backend, [new_job("t", "q1", kwargs={"c": 1}) for _ in range(3)])
    insert_jobs(backend, [new_job("t", "q2", kwargs={"c": 1}) for _ in range(2)])
    insert_jobs(backend, [new_job("t", "q1", kwargs={"c": 2})])
    assert [j.id for j in app.jobs(queue="q1", args_contains={"c": 1})] == sorted(a)[::-1]
    assert app.count_jobs(queue="q1", args_contains={"c": 1}) == 3
    assert app.count_jobs(args_contains={"c": 1}) == 5
    assert app.count_jobs() == 6


def fail(backend: Backend, kinds: list[str], queue: str = "default") -> int:
    """Store a job and fail one attempt per kind (the last dead); return its id."""
    (job_id,) = insert(backend, 1, queue=queue, max_attempts=len(kinds))
    for number, kind in enumerate(kinds, 1):
        (job,) = backend.claims.claim(ClaimParams("w1", queue, 1, 30.0))
        last = number == len(kinds)
        state = JobState.DEAD if last else JobState.RETRYING
        outcome = Outcome(job.id, job.attempt, state, error=error_json(kind), delay=0.0)
        assert backend.claims.finish(FinishParams("w1", [outcome])) == []
    return job_id


def test_error_type_is_the_latest_errors(app: offload.App, backend: Backend) -> None:
    first_value = fail(backend, ["ValueError", "KeyError"])
    value = fail(backend, ["KeyError", "ValueError"])
    mine = fail(backend, ["myapp.errors.Timeout"])
    insert(backend, 2)  # no error at all
    assert [j.id for j in app.jobs(error_type="ValueError")] == [value]
    assert [j.id for j in app.jobs(error_type="KeyError")] == [first_value]
    assert [j.id for j in app.jobs(error_type="myapp.errors.Timeout")] == [mine]
    assert app.jobs(error_type="Timeout") == []  # the stored name, exactly
    assert app.count_jobs(error_type="ValueError", state="dead") == 1
    assert app.count_jobs(error_type="ValueError", state="available") == 0
    assert app.count_jobs(state="dead") == 3


@pytest.mark.parametrize(
    "given",
    [
        {"args_contains": {1, 2}},
        {"args_contains": "\x00"},
        {"args_contains": {"a": object()}},
        {"error_type": 5},
    ],
)
def test_bad_filters_are_refused(app: offload.App, given: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        app.jobs(**given)
    with pytest.raises(ValidationError):
        app.count_jobs(**given)
    with pytest.raises(ValidationError):
        app.bulk("cancel", **given)


# -- bulk in batches --------------------------------------------------------------------


def test_bulk_walks_a_large_selection_in_batches(app: offload.App, backend: Backend) -> None:
    insert_jobs(backend, [new_job("t", "big", args=[i]) for i in range(2500)])
    insert_jobs(backend, [new_job("t", "other", args=[i]) for i in range(10)])
    assert app.count_jobs(queue="big") == 2500
    progress = list(app.bulk("cancel", queue="big", batch_size=1000))
    assert [(p.matched_so_far, p.changed, p.done) for p in progress] == [
        (1000, 1000, False),
        (2000, 2000, False),
        (2500, 2500, True),
    ]
    assert app.count_jobs(queue="big", state="cancelled") == 2500
    assert app.count_jobs(queue="other", state="available") == 10
    # Retry them back, then purge only what is over: retry takes only cancelled jobs.
    cancelled_other = app.cancel_many(queue="other", args_contains=3)
    assert len(cancelled_other) == 1
    retried = list(app.bulk("retry", state="cancelled", batch_size=1000))
    assert retried[-1].changed == 2501 and retried[-1].done
    assert len(retried) == 3
    assert app.count_jobs(state="available") == 2510
    app.cancel_many(queue="big", args_contains=7)
    purged = list(app.bulk("purge", queue="big", batch_size=1000))
    assert [(p.matched_so_far, p.changed, p.done) for p in purged] == [(1, 1, True)]
    assert app.count_jobs() == 2509


def test_bulk_changes_only_the_states_it_accepts(app: offload.App, backend: Backend) -> None:
    insert(backend, 3, queue="q")
    fail(backend, ["ValueError"], queue="q")
    (job,) = backend.claims.claim(ClaimParams("w1", "q", 1, 30.0))  # one running
    steps = list(app.bulk("purge", queue="q", batch_size=2))
    assert steps == [offload.BulkProgress(1, 1, True)]  # only the dead one is over
    steps = list(app.bulk("cancel", queue="q", batch_size=2))
    assert [(s.matched_so_far, s.changed, s.done) for s in steps] == [
        (2, 2, False),
        (3, 3, True),  # a short batch is the last
    ]
    assert backend.jobs.get(job.id).state is JobState.RUNNING  # asked to stop
    assert app.count_jobs(queue="q", state="cancelled") == 2


def test_bulk_of_an_exact_multiple_ends_with_an_empty_batch(
    app: offload.App, backend: Backend
) -> None:
    insert(backend, 4, queue="q")
    steps = list(app.bulk("cancel", queue="q", batch_size=2))
    assert [(s.matched_so_far, s.done) for s in steps] == [(2, False), (4, False), (4, True)]
    assert list(app.bulk("cancel", queue="q")) == [offload.BulkProgress(0, 0, True)]


def test_bulk_refuses_an_empty_selection_and_bad_arguments(app: offload.App) -> None:
    with pytest.raises(ValidationError, match="all_jobs=True"):
        app.bulk("retry")
    with pytest.raises(ValidationError, match="operation"):
        app.bulk("delete", queue="q")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="batch_size"):
        app.bulk("retry", queue="q", batch_size=0)
    with pytest.raises(ValidationError, match=r"not .available"):
        app.bulk("purge", state="available")
    assert list(app.bulk("retry", all_jobs=True)) == [offload.BulkProgress(0, 0, True)]


def test_ids_pages_newest_first_in_the_states_given(backend: Backend) -> None:
    ids = insert(backend, 5, queue="q")
    backend.jobs.cancel(ids[1])
    where = JobFilter(queue="q")
    queued = frozenset({JobState.AVAILABLE})
    assert backend.jobs.ids(JobIdsParams(where, queued, limit=2)) == [ids[4], ids[3]]
    assert backend.jobs.ids(JobIdsParams(where, queued, before_id=ids[3])) == [ids[2], ids[0]]
    cancelled = frozenset({JobState.CANCELLED})
    assert backend.jobs.ids(JobIdsParams(where, cancelled)) == [ids[1]]
