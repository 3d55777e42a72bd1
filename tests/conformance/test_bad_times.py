"""Run times: refused at enqueue outside the documented range, alike on both backends; and a
stored time outside it (written by hand or by an older version) never breaks a listing
(issue 12, item 6)."""

from __future__ import annotations

from datetime import UTC, datetime

import offload
from offload.core.times import TOO_EARLY, TOO_LATE
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
