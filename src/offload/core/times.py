"""The range of run times offload accepts, and reading stored times that lie outside it.

A job runs at `at=` (an exact time) or `delay=` seconds after the database's now. Both are
refused at enqueue outside a documented range, the same on every backend: `at` from
1970-01-01 to 9999-12-31 23:59:59 UTC, `delay` up to 100 years. Every time stored through
offload is then one a Python datetime can hold. A row written otherwise (by hand, or by an
older version) reads as the nearest end of datetime's range instead of failing the whole
listing it is in.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

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


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: The forms `parse_time` reads, for help texts and error messages.
TIME_FORMS = (
    "an ISO 8601 time (2026-11-28T09:30:00Z; UTC unless it has an offset) "
    "or an age (90s, 30m, 1h, 2d, 1w)"
)


def parse_age(text: str) -> timedelta | None:
    """A length of time such as `90s`, `30m`, `1h`, `2d` or `1w`; None if `text` is not one."""
    age = _AGE.match(text)
    if age is None:
        return None
    return timedelta(**{_UNITS[age.group(2)]: float(age.group(1))})


def parse_time(text: str) -> datetime | timedelta:
    """A time bound as the CLI and the HTTP API take it: an ISO 8601 time (UTC unless it
    has an offset), or an age meaning that long before now; ValueError for anything else."""
    try:
        age = parse_age(text)
        if age is not None:
            return age
        moment = datetime.fromisoformat(text.strip())
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is not a time: give {TIME_FORMS}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
