"""The range of run times offload accepts, and reading stored times that lie outside it.

A job runs at `at=` (an exact time) or `delay=` seconds after the database's now. Both are
refused at enqueue outside a documented range, the same on every backend: `at` from
1970-01-01 to 9999-12-31 23:59:59 UTC, `delay` up to 100 years. Every time stored through
offload is then one a Python datetime can hold. A row written otherwise (by hand, or by an
older version) reads as the nearest end of datetime's range instead of failing the whole
listing it is in.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: The earliest and latest `at=` accepted.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
#: The longest `delay=` accepted, in seconds: 100 years of 365.25 days.
MAX_DELAY = 100 * 365.25 * 86400

#: What a stored time past either end of datetime's range reads as.
TOO_LATE = datetime.max.replace(tzinfo=UTC)
TOO_EARLY = datetime.min.replace(tzinfo=UTC)


def from_epoch(value: float) -> datetime:
    """Stored epoch seconds as an aware UTC datetime, clamped to datetime's range (NaN
    reads as the earliest)."""
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError):
        return TOO_LATE if value > 0 else TOO_EARLY
