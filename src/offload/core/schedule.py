"""Periodic schedules: cron expressions, time zones and which ticks are due (no I/O).

Cron parsing is cronsim's, chosen because it follows Debian cron across DST changes: a time
skipped by spring-forward runs once right after the gap, a time repeated by fall-back runs
once (croniter runs it twice). cronsim reads five fields, or six with a leading seconds field;
the usual `@daily`-style macros are mapped here because cronsim has none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from offload.core.errors import ConfigurationError
from offload.core.options import check_name

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: Ticks are never searched further back than this, whatever the window.
_MAX_TICKS = 100_000


class Misfire(StrEnum):
    """What to do with ticks missed while every scheduler was down."""

    ALL = "all"  # run each missed tick (within the catch-up window)
    LAST = "last"  # run the newest missed tick once (the default)
    SKIP = "skip"  # run none; carry on from the next tick


def parse_cron(expr: str) -> str:
    """Validate a cron expression (or macro); return the expression cronsim reads."""
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigurationError(f"cron expression must be non-empty text, got {expr!r}")
    text = expr.strip()
    if text.startswith("@"):
        if text not in MACROS:
            raise ConfigurationError(
                f"unknown cron macro {text!r}; one of {', '.join(sorted(MACROS))}"
            )
        text = MACROS[text]
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError, KeyError) as exc:
        raise ConfigurationError(f"bad cron expression {expr!r}: {exc}") from None
    return text


def parse_misfire(value: Misfire | str) -> Misfire:
    """A misfire policy by name, with a clear error for an unknown one."""
    try:
        return Misfire(value)
    except ValueError:
        choices = ", ".join(m.value for m in Misfire)
        raise ConfigurationError(f"unknown misfire policy {value!r}; one of {choices}") from None


def parse_zone(name: str) -> ZoneInfo:
    """A time zone by IANA name, with a clear error for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"unknown time zone {name!r} (use an IANA name)") from None


@dataclass(frozen=True, slots=True)
class ScheduleDef:
    """A declared periodic job: which task to enqueue, with what, at which ticks."""

    name: str
    cron: str
    task: str
    tz: str = "UTC"
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    misfire: Misfire = Misfire.LAST
    #: Missed ticks older than this are never run, whatever the policy (seconds).
    catch_up: float = 3600.0

    def __post_init__(self) -> None:
        check_name("schedule", self.name)
        object.__setattr__(self, "cron", parse_cron(self.cron))
        parse_zone(self.tz)
        object.__setattr__(self, "misfire", parse_misfire(self.misfire))
        if not isinstance(self.catch_up, int | float) or self.catch_up < 0:
            raise ConfigurationError(f"catch_up must be seconds >= 0, got {self.catch_up!r}")

    def ticks_after(self, start: datetime) -> Iterator[datetime]:
        """Tick times strictly after `start`, as aware UTC datetimes."""
        zone = parse_zone(self.tz)
        for tick in CronSim(self.cron, start.astimezone(zone)):
            yield tick.astimezone(UTC)

    def next_tick(self, after: datetime) -> datetime:
        """The first tick strictly after `after`."""
        return next(self.ticks_after(after))

    def next_run(self, now: datetime, last_tick: datetime) -> datetime:
        """The next tick a scheduler fires: after `now` and after the newest tick handled
        (a scheduler whose clock ran ahead may have handled ticks past `now`)."""
        return self.next_tick(max(now, last_tick))

    def due(
        self, last: datetime, checked: datetime, now: datetime, down_after: float
    ) -> tuple[list[datetime], datetime | None]:
        """Ticks to fire at `now`, and the newest tick passed (the new `last`).

        `last` is the newest tick already handled and `checked` when a scheduler last looked.
        Ticks in (last, now] are due. If no scheduler looked for more than `down_after`
        seconds, every scheduler was down: the ticks missed meanwhile follow the misfire
        policy. A tick older than the catch-up window is never fired.
        """
        floor = now - timedelta(seconds=self.catch_up)
        ticks: list[datetime] = []
        newest: datetime | None = None
        for count, tick in enumerate(self.ticks_after(last)):
            if tick > now or count >= _MAX_TICKS:
                break
            newest = tick
            if tick >= floor:
                ticks.append(tick)
        if ticks and (now - checked).total_seconds() > down_after:
            if self.misfire is Misfire.SKIP:
                ticks = []
            elif self.misfire is Misfire.LAST:
                ticks = ticks[-1:]
        return ticks, newest
