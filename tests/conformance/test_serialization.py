"""RELIABILITY 24, round trip: every JSON value comes back equal, through every path that
stores or returns a payload; everything else is refused with SerializationError and nothing
is stored. Hypothesis examples share one backend per test function."""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import offload
from offload.backends.params import ClaimParams, FinishParams, Outcome
from offload.core import serialization
from offload.core.errors import SerializationError
from offload.core.options import EnqueueOptions
from offload.core.states import JobState
from tests.conformance.helpers import RawDB, claim_one, insert

INT_MIN, INT_MAX = -(2**63), 2**64 - 1

texts = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(["\x00", "\x1f", '"', "\\", "\u2028", "é", "\U0001f600"])),
    st.just("\x00"),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT_MIN, INT_MAX),
    st.sampled_from([INT_MIN, INT_MAX, 2**63, 2**63 - 1, -1, 0]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324, 1.7976931348623157e308, 1e-7, 0.1]),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(texts, children, max_size=6),
    ),
    max_leaves=25,
)

ROUND_TRIP = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _echo(app: offload.App) -> offload.Task[..., Any]:
    """The round-trip task, registered once per App (hypothesis reuses the fixture)."""
    if "echo" not in app.registry:

        @app.task(name="echo")
        def echo(value: Any = None, **kwargs: Any) -> Any:
            return value

    return offload.Task(app, app.registry.get("echo"), EnqueueOptions())


def _same(a: Any, b: Any) -> bool:
    """Equality that also tells int from float where == would not (1 == 1.0)."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return False


@ROUND_TRIP
@given(value=json_values)
def test_json_values_round_trip_through_enqueue_claim_and_result(
    app: offload.App, value: Any
) -> None:
    echo = _echo(app)
    handle = echo.enqueue(value, key=value)
    stored = app.backend.jobs.get(handle.id)
    assert stored.args == [value]
    assert stored.kwargs == {"key": value}
    assert _same(stored.args[0], value)
    assert _same(stored.kwargs["key"], value)
    (claimed,) = app.backend.claims.claim(ClaimParams("w1", "default", 1, 30.0))
    assert claimed.id == handle.id
    assert _same(claimed.args[0], value)
    result = serialization.dumps(value, "result")
    outcome = Outcome(claimed.id, claimed.attempt, JobState.SUCCEEDED, result=result)
    assert app.backend.claims.finish(FinishParams("w1", [outcome])) == []
    assert _same(app.backend.jobs.get(handle.id).result, value)


@ROUND_TRIP
@given(values=st.lists(json_values, min_size=2, max_size=8))
def test_json_values_round_trip_through_enqueue_many(app: offload.App, values: list[Any]) -> None:
    echo = _echo(app)
    handles = echo.enqueue_many([offload.call(v, k=v) for v in values])
    for handle, value in zip(handles, values, strict=True):
        job = app.backend.jobs.get(handle.id)
        assert _same(job.args, [value])
        assert _same(job.kwargs, {"k": value})


def _nest(levels: int, inner: Any = 0) -> Any:
    value = inner
    for level in range(levels):
        value = [value] if level % 2 else {"n": value}
    return value


surrogates = st.characters(categories=["Cs"])
bad_scalars = st.one_of(
    st.just(math.nan),
    st.sampled_from([math.inf, -math.inf]),
    st.integers(min_value=INT_MAX + 1),
    st.integers(max_value=INT_MIN - 1),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=3), surrogates, st.text(max_size=3)),
    st.sampled_from([300, 1000]).map(_nest),
)


@st.composite
def containing_a_bad_value(draw: st.DrawFn) -> Any:
    """A JSON value with one bad value placed somewhere inside it (or at the top)."""
    bad = draw(bad_scalars)
    depth = draw(st.integers(0, 4))
    value = bad
    for _ in range(depth):
        siblings = draw(st.lists(scalars, max_size=3))
        if draw(st.booleans()):
            position = draw(st.integers(0, len(siblings)))
            value = [*siblings[:position], value, *siblings[position:]]
        else:
            keys = draw(st.lists(st.text(max_size=5), max_size=3, unique=True))
            mapping: dict[str, Any] = {k: s for k, s in zip(keys, siblings, strict=False)}
            mapping[draw(st.text(max_size=5).filter(lambda k: k not in mapping))] = value
            value = mapping
    return value


@ROUND_TRIP
@given(value=containing_a_bad_value(), as_kwarg=st.booleans())
def test_values_outside_json_are_refused_and_nothing_is_stored(
    app: offload.App, db_url: str, value: Any, as_kwarg: bool
) -> None:
    echo = _echo(app)
    raw = RawDB(db_url)
    before = raw.count_jobs()
    try:
        if as_kwarg:
            echo.enqueue(other=value)
        else:
            echo.enqueue(value)
    except SerializationError:
        pass
    else:
        raise AssertionError(f"{value!r:.200} was accepted")
    try:
        echo.enqueue_many([offload.call(1), offload.call(value)])
    except SerializationError:
        pass
    else:
        raise AssertionError(f"{value!r:.200} was accepted by enqueue_many")
    assert raw.count_jobs() == before


def test_every_stored_row_is_readable_after_the_round_trips(app: offload.App) -> None:
    """A fixed corpus of awkward values, stored and listed back in one go (0 unreadable)."""
    echo = _echo(app)
    corpus: list[Any] = [
        "\x00",
        {"\x00": "\x00"},
        INT_MAX,
        INT_MIN,
        -0.0,
        5e-324,
        1.7976931348623157e308,
        '\U0001f600\u2028\\"',
        _nest(190),
        [],
        {},
        "",
        {"": [None, True, False]},
    ]
    handles = echo.enqueue_many([offload.call(v) for v in corpus])
    listed = {job.id: job for job in app.jobs(limit=100)}
    assert len(listed) == len(corpus)
    for handle, value in zip(handles, corpus, strict=True):
        assert _same(listed[handle.id].args, [value])


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=st.lists(json_values, min_size=1, max_size=10))
def test_worker_receives_and_returns_equal_values(app: offload.App, values: list[Any]) -> None:
    if "recorder" not in app.registry:

        @app.task(name="recorder")
        def recorder(value: Any) -> Any:
            _RECEIVED.append(value)
            return value

    task: offload.Task[..., Any] = offload.Task(app, app.registry.get("recorder"), EnqueueOptions())
    _RECEIVED.clear()
    handles = task.enqueue_many([(v,) for v in values])
    worker = app.worker(
        executor="thread", burst=True, install_signals=False, concurrency=2, poll_interval=0.05
    )
    assert worker.run() == 0
    assert len(_RECEIVED) == len(values)
    for handle, value in zip(handles, values, strict=True):
        job = handle.job()
        assert job.state is JobState.SUCCEEDED, job.errors
        assert _same(job.result, value)
    for value in values:
        assert any(_same(value, got) for got in _RECEIVED)


#: What the recorder task was called with (the thread executor runs it in this process).
_RECEIVED: list[Any] = []


def test_an_error_text_with_nul_characters_is_stored(app: offload.App) -> None:
    """PostgreSQL's jsonb has no NUL: there it is written as backslash zero; SQLite keeps it."""
    backend = app.backend
    (job_id,) = insert(backend, 1, max_attempts=1)
    job = claim_one(backend)
    error = orjson.dumps({"type": "ValueError", "message": "bad \x00 byte", "attempt": 1})
    outcome = Outcome(job.id, job.attempt, JobState.DEAD, error=error.decode())
    assert backend.claims.finish(FinishParams("w1", [outcome])) == []
    (stored,) = backend.jobs.get(job_id).errors
    expected = "bad \x00 byte" if backend.name == "sqlite" else "bad \\0 byte"
    assert stored == {"type": "ValueError", "message": expected, "attempt": 1}
