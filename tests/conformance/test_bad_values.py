"""Values no job can have: ids past 64 bits, lone surrogates, per-call options out of range.
Each is refused (or found to name nothing) alike on both backends, with one short error
that names the field (issue 12, item 6)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

import offload
from offload.core.errors import (
    ConfigurationError,
    JobNotFound,
    ScheduleNotFound,
    SerializationError,
    UnknownTask,
    ValidationError,
)
from offload.core.options import MAX_ATTEMPTS
from tests.conformance.helpers import insert

# -- ids outside 64 bits ----------------------------------------------------------------

FAR_IDS = [2**63, 2**70, -(2**63) - 1, -(2**70), -1, 0]


@pytest.mark.parametrize("job_id", FAR_IDS, ids=str)
@pytest.mark.usefixtures("stored")
def test_an_id_no_job_can_have_is_not_found(app: offload.App, job_id: int) -> None:
    """SQLite cannot bind an int past 64 bits (OverflowError); PostgreSQL compares it."""
    for operation in (app.job, app.cancel, app.retry):
        with pytest.raises(JobNotFound) as info:
            operation(job_id)
        assert info.value.job_id == job_id
        assert str(info.value) == f"no job with id {job_id}"


def test_a_listing_cursor_or_limit_past_64_bits_means_what_it_says(app: offload.App) -> None:
    ids = sorted(insert(app.backend, 3), reverse=True)
    for huge in (2**63, 2**70):
        assert [job.id for job in app.jobs(before_id=huge)] == ids
        assert [job.id for job in app.jobs(limit=huge)] == ids
    for tiny in (-(2**63), -(2**63) - 1, -(2**70)):
        assert app.jobs(before_id=tiny) == []


# -- error messages quote a readable part of the input ---------------------------------

HUGE = 100_000  # characters: each message below says 1000xx


def _short(error: BaseException) -> str:
    """The message of `error`, checked to be short and to tell how long the input was."""
    message = str(error)
    assert len(message) < 500, message[:1000]
    assert re.search(r"\.\.\..* \(1000\d\d characters\)", message), message
    return message


@pytest.mark.usefixtures("stored")
def test_error_messages_quote_a_readable_part_of_a_huge_input(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    with pytest.raises(UnknownTask) as unknown:
        app.enqueue("x" * HUGE)
    _short(unknown.value)
    long_key = "k" * HUGE
    with pytest.raises(SerializationError) as info:
        echo.enqueue(payload={long_key: {1: 2}})
    assert "has a key 1 of type int" in _short(info.value)
    with pytest.raises(SerializationError) as info:
        echo.enqueue([{long_key: [float("nan")]}])
    assert _short(info.value).endswith("nan, which JSON cannot represent")
    with pytest.raises(ScheduleNotFound) as missing:
        app.cron_run("s" * HUGE)
    _short(missing.value)


def test_an_id_too_long_to_print_is_not_found_in_a_short_message(app: offload.App) -> None:
    with pytest.raises(JobNotFound) as info:
        app.job(10**5000)  # str() refuses an int of 4,300+ digits
    assert str(info.value) == "no job with id <int too large to show>"


# -- bad input to a call is a ValidationError; a bad declaration a ConfigurationError ----

Call = Callable[[offload.App, offload.Task[..., Any]], object]
BAD_CALLS: list[tuple[str, Call]] = [
    ("priority", lambda app, echo: echo.options(priority=5000)),
    ("priority", lambda app, echo: app.enqueue("echo", priority=1.5)),
    ("delay", lambda app, echo: echo.options(delay=-1)),
    ("delay", lambda app, echo: app.enqueue("echo", delay=float("nan"))),
    ("max_attempts", lambda app, echo: echo.options(max_attempts=0)),
    ("queue name", lambda app, echo: echo.options(queue="")),
    ("either delay or at", lambda app, echo: echo.options(delay=1, at=datetime.now(UTC))),
    ("at must be a datetime", lambda app, echo: echo.options(at="tomorrow")),  # type: ignore[arg-type]
    ("no time zone", lambda app, echo: echo.options(at=datetime(2030, 1, 1))),
    ("idempotency_key", lambda app, echo: echo.options(idempotency_key="k").enqueue_many([()])),
    ("limit", lambda app, echo: app.jobs(limit=0)),
    ("before_id", lambda app, echo: app.jobs(before_id="3")),  # type: ignore[arg-type]
    ("unknown job state", lambda app, echo: app.jobs(state="finished")),
]


@pytest.mark.parametrize(("field", "call"), BAD_CALLS, ids=[f for f, _ in BAD_CALLS])
@pytest.mark.usefixtures("stored")
def test_bad_input_to_a_call_is_a_validation_error_naming_it(
    app: offload.App, echo: offload.Task[..., Any], field: str, call: Call
) -> None:
    with pytest.raises(ValidationError) as info:
        call(app, echo)
    assert not isinstance(info.value, ConfigurationError)
    assert field in str(info.value), str(info.value)


def test_bad_declarations_stay_configuration_errors(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    declarations: list[Callable[[], object]] = [
        lambda: app.task(name="t", priority=5000),
        lambda: app.task(name="t", queue=""),
        lambda: app.task(name="t", max_attempts=0),
        lambda: app.schedule(echo, "@daily", name="s", priority=5000),
        lambda: app.schedule(echo, "@daily", name="s", queue=""),
        lambda: offload.RetryPolicy(max_attempts=0),
    ]
    for declare in declarations:
        with pytest.raises(ConfigurationError):
            declare()


def test_max_attempts_past_the_documented_range_is_refused(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    """2**40 was stored on SQLite and failed with 'integer out of range' on PostgreSQL."""
    for attempts in (MAX_ATTEMPTS + 1, 2**40, 2**70):
        with pytest.raises(ValidationError, match="max_attempts must be within"):
            echo.options(max_attempts=attempts).enqueue()
        with pytest.raises(ConfigurationError, match="max_attempts must be within"):
            app.task(name="t", max_attempts=attempts)
    assert app.jobs() == []
    assert echo.options(max_attempts=MAX_ATTEMPTS).enqueue().job().max_attempts == MAX_ATTEMPTS


# -- lone surrogates --------------------------------------------------------------------

#: How a command-line argument that is not UTF-8 reaches Python (surrogateescape).
SURROGATE = "mail\udcff"
SURROGATE_CALLS: list[tuple[str, Call]] = [
    ("queue name", lambda app, echo: echo.options(queue=SURROGATE).enqueue()),
    ("queue name", lambda app, echo: app.enqueue("echo", queue=SURROGATE)),
    ("idempotency_key", lambda app, echo: echo.options(idempotency_key=SURROGATE).enqueue()),
    ("queue", lambda app, echo: app.jobs(queue=SURROGATE)),
    ("task", lambda app, echo: app.jobs(task=SURROGATE)),
    ("schedule name", lambda app, echo: app.cron_pause(SURROGATE)),
]


@pytest.mark.parametrize(
    ("field", "call"), SURROGATE_CALLS, ids=[f"{n}-{f}" for n, (f, _) in enumerate(SURROGATE_CALLS)]
)
@pytest.mark.usefixtures("stored")
def test_lone_surrogates_are_refused_naming_the_field(
    app: offload.App, echo: offload.Task[..., Any], field: str, call: Call
) -> None:
    """They raised a raw UnicodeEncodeError from the database driver."""
    with pytest.raises(ValidationError) as info:
        call(app, echo)
    message = str(info.value)
    assert message.startswith(f"{field} 'mail\\udcff' contains a lone surrogate"), message


#: Keys and filters with a NUL, which PostgreSQL text cannot hold (a key was a
#: BackendError there, a filter BackendUnavailable; found by fuzzing the HTTP API).
NUL = "a\x00b"
NUL_CALLS: list[tuple[str, Call]] = [
    ("unique", lambda app, echo: app.enqueue("echo", unique=NUL)),
    ("replace", lambda app, echo: echo.options(replace=NUL).enqueue()),
    ("idempotency_key", lambda app, echo: echo.options(idempotency_key=NUL).enqueue()),
    ("queue", lambda app, echo: app.jobs(queue=NUL)),
    ("task", lambda app, echo: app.cancel_many(task=NUL)),
]


@pytest.mark.parametrize(
    ("field", "call"), NUL_CALLS, ids=[f"{n}-{f}" for n, (f, _) in enumerate(NUL_CALLS)]
)
@pytest.mark.usefixtures("stored")
def test_a_nul_in_a_key_or_filter_is_refused_naming_the_field(
    app: offload.App, echo: offload.Task[..., Any], field: str, call: Call
) -> None:
    with pytest.raises(ValidationError) as info:
        call(app, echo)
    message = str(info.value)
    assert message.startswith(f"{field} 'a\\x00b' contains a NUL character"), message


@pytest.mark.usefixtures("stored")
def test_an_idempotency_key_must_be_text(echo: offload.Task[..., Any]) -> None:
    with pytest.raises(ValidationError, match="idempotency_key must be a str, got 5"):
        echo.options(idempotency_key=5).enqueue()  # type: ignore[arg-type]


def test_a_task_declared_with_a_lone_surrogate_is_refused(app: offload.App) -> None:
    with pytest.raises(ConfigurationError, match=r"task name .* contains a lone surrogate"):
        app.task(name=SURROGATE)(lambda: None)
    with pytest.raises(ConfigurationError, match=r"queue name .* contains a lone surrogate"):
        app.task(name="t", queue=SURROGATE)
