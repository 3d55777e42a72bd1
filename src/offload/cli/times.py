"""TIME values on the command line: an ISO 8601 time, or an age counted back from now."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import click

from offload.core.times import TIME_FORMS, parse_time


class TimeType(click.ParamType[datetime | timedelta, Any]):
    """An ISO 8601 time, or an age such as `30m` meaning that long ago (by the database's
    clock); a time without an offset is UTC."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime | timedelta:
        if isinstance(value, datetime | timedelta):
            return value
        try:
            return parse_time(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


__all__ = ["TIME_FORMS", "TimeType"]
