"""TIME values on the command line: an ISO 8601 time, or an age counted back from now."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
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


class TimeType(click.ParamType[datetime | timedelta, Any]):
    """An ISO 8601 time, or an age such as `30m` meaning that long ago (by the database's
    clock); a time without an offset is UTC."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime | timedelta:
        if isinstance(value, datetime | timedelta):
            return value
        text = str(value)
        try:
            age = parse_age(text)
            if age is not None:
                return age
            moment = datetime.fromisoformat(text.strip())
        except (ValueError, OverflowError):
            self.fail(f"{text!r} is not a time: give {TIME_FORMS}", param, ctx)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
