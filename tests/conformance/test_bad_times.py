"""Run times: refused at enqueue outside the documented range, alike on both backends; and a
stored time outside it (written by hand or by an older version) never breaks a listing
(issue 12, item 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import offload
from offload.core.errors import ConfigurationError, ValidationError
from offload.core.times import EARLIEST, LATEST, MAX_DELAY, TOO_EARLY, TOO_LATE
from tests.conformance.helpers import RawDB, insert, is_sqlite

#: Times no datetime can hold, as each backend stores them: column -> (stored, read as).
OUT_OF_RANGE = {
    "sqlite": {
        "run_at": ("1e30", TOO_LATE),
        "started_at": ("-1e30", TOO_EARLY),
        "finished_at": ("9e999", TOO_LATE),  # +Inf
        "lease_until": ("253402300800", TOO_LATE),  # 10000-01-01
    },
    "postgres": {
        "run_at": ("'infinity'", TOO_LATE),
        "started_at": ("'-infinity'", TOO_EARLY),
        "finished_at": ("'20000-01-01 00:00:00+00'", TOO_LATE),
        "lease_until": ("'0044-03-15 00:00:00+00 BC'", TOO_EARLY),
    },
}


def test_a_stored_time_out_of_range_does_not_break_listing(app: offload.App, db_url: str) -> None:
    bad, good = insert(app.backend, 2)
    stored = OUT_OF_RANGE["sqlite" if is_sqlite(db_url) else "postgres"]
    settings = ", ".join(f"{column} = {value}" for column, (value, _) in stored.items())
    RawDB(db_url).execute(f"UPDATE offload_jobs SET {settings} WHERE id = ?", [bad])

    listed = {job.id: job for job in app.jobs()}
    assert sorted(listed) == [bad, good]
    for job in (listed[bad], app.job(bad).job()):
        read = {column: getattr(job, column) for column in stored}
        assert read == {column: expected for column, (_, expected) in stored.items()}
    assert listed[good].run_at.year == datetime.now(UTC).year
    assert listed[good].started_at is None


# -- the documented range, enforced at enqueue -------------------------------------------

TOO_FAR: list[tuple[str, dict[str, Any]]] = [
    ("delay", {"delay": 1e30}),
    ("delay", {"delay": MAX_DELAY + 1}),
    ("at", {"at": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-2)))}),  # 10000
    ("at", {"at": datetime(9999, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)}),
    ("at", {"at": datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)}),
    ("at", {"at": datetime(1, 1, 1, tzinfo=UTC)}),
]


@pytest.mark.parametrize(("field", "options"), TOO_FAR, ids=[str(o) for _, o in TOO_FAR])
@pytest.mark.usefixtures("stored")
def test_run_times_outside_the_documented_range_are_refused(
    app: offload.App, echo: offload.Task[..., Any], field: str, options: dict[str, Any]
) -> None:
    """delay=1e30 was stored on SQLite (and broke every listing) and failed with a
    BackendError on PostgreSQL: both refuse it now, naming the field."""
    with pytest.raises(ValidationError) as info:
        echo.options(**options).enqueue(1)
    assert str(info.value).startswith(field), str(info.value)
    with pytest.raises(ValidationError, match=f"^{field}"):
        echo.options(**options).enqueue_many([(1,), (2,)])
    with pytest.raises(ValidationError, match=f"^{field}"):
        app.enqueue("echo", [1], **options)


def test_run_times_at_the_ends_of_the_range_are_stored_and_read_back(
    app: offload.App, echo: offload.Task[..., Any]
) -> None:
    first = echo.options(at=EARLIEST).enqueue().job()
    last = echo.options(at=LATEST).enqueue().job()
    far = echo.options(delay=MAX_DELAY).enqueue().job()
    assert (first.run_at, first.state) == (EARLIEST, offload.JobState.AVAILABLE)
    assert (last.run_at, last.state) == (LATEST, offload.JobState.SCHEDULED)
    assert (far.run_at - far.enqueued_at).total_seconds() == pytest.approx(MAX_DELAY, abs=1)
    assert [job.run_at for job in app.jobs()] == [far.run_at, LATEST, EARLIEST]


def test_a_retry_delay_past_the_range_is_refused_at_declaration() -> None:
    with pytest.raises(ConfigurationError, match="max_delay"):
        offload.RetryPolicy(max_delay=1e30)
    assert offload.RetryPolicy(max_delay=MAX_DELAY).max_delay == MAX_DELAY
