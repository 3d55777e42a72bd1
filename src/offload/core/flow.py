"""Flow control as plain values: queue policies, rate limits, task limits (no I/O).

A `QueuePolicy` is what `App.queue` declares and `offload queues set` changes; the database
stores it (one row per queue) and enforces it in the enqueue's or the claim's transaction.
Validation lives here so that code, CLI and HTTP refuse the same bad values with the same
words; which error class they raise is the caller's (declaration or call).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from offload.core.errors import ConfigurationError, OffloadError, shorten

#: Seconds of head start per priority step when a queue sets no `aging`: a job of priority
#: p is claimed before jobs of priority p + 1 that became due more than 60 s after it.
DEFAULT_AGING = 60.0

#: The largest `aging`: 1000 priority steps of it stay within 32 years of head start.
MAX_AGING = 1_000_000.0

#: What a queue does with an enqueue admission control turns away.
OVERLOAD_ACTIONS = ("refuse", "shed")

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
          "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}  # fmt: skip
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]+)\s*$")

ErrorClass = type[OffloadError]


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` starts in any window of `period` seconds."""

    count: int
    period: float

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ConfigurationError(f"rate count must be an int >= 1, got {shorten(self.count)}")
        period = self.period
        if isinstance(period, bool) or not isinstance(period, int | float):
            raise ConfigurationError(f"rate period must be seconds, got {shorten(period)}")
        if not math.isfinite(period) or period <= 0 or period > 86400 * 366:
            raise ConfigurationError(f"rate period must be within (0, 1 year], got {period!r}")

    def __str__(self) -> str:
        for unit, seconds in (("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", 86400.0)):
            if self.period == seconds:
                return f"{self.count}/{unit}"
        return f"{self.count}/{self.period:g}s"

    @classmethod
    def parse(
        cls, value: Rate | str | tuple[int, float], error: ErrorClass = ConfigurationError
    ) -> Rate:
        """`"20/s"`, `"100/m"`, `"5/h"`, `"1000/d"`, `"3/10s"` or `(count, seconds)`."""
        if isinstance(value, Rate):
            return value
        if isinstance(value, str):
            match = _RATE.match(value.lower())
            if match is None or match[3] not in _UNITS:
                raise error(
                    f"rate limit {shorten(value)} does not parse; write COUNT/UNIT such as "
                    "'20/s', '100/m', '5/h', '3/10s', or give (count, seconds)"
                )
            count, period = int(match[1]), (float(match[2]) if match[2] else 1.0) * _UNITS[match[3]]
        elif isinstance(value, tuple) and len(value) == 2:
            count, period = value
        else:
            raise error(
                f"rate limit must be a string like '20/s' or (count, seconds), got {shorten(value)}"
            )
        try:
            return cls(count, period)
        except ConfigurationError as exc:
            raise error(f"rate limit {shorten(value)}: {exc}") from None


@dataclass(frozen=True, slots=True)
class TaskLimits:
    """A task's own limits, global across workers: `concurrency` jobs running at once and
    `rate` starts per window, per limit key when `keyed` (else for the task as a whole)."""

    concurrency: int | None = None
    rate: Rate | None = None
    keyed: bool = False


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """How a queue pushes back, admits, orders, limits and sheds. None means no bound.

    - `max_depth`: jobs not yet started (available, scheduled, retrying) beyond which an
      enqueue raises `QueueFull`.
    - `admit_depth` / `max_wait`: above this many not-started jobs, or while the oldest
      available job has waited longer than `max_wait` seconds, enqueues of priority below
      `admit_priority` are refused (`Overloaded`) or, with `overload="shed"`, stored shed.
    - `shed_priority` / `shed_depth` / `resume_depth`: above `shed_depth`, new and waiting
      jobs of priority below `shed_priority` move to `shed`; the sweep re-admits them once
      the queue is under `resume_depth` (default half of `shed_depth`).
    - `aging`: seconds of head start per priority step (0: first come, first served).
    - `concurrency` / `rate`: jobs of the queue running at once / started per window.
    """

    max_depth: int | None = None
    admit_depth: int | None = None
    admit_priority: int = 1
    max_wait: float | None = None
    overload: str = "refuse"
    shed_priority: int | None = None
    shed_depth: int | None = None
    resume_depth: int | None = None
    aging: float = DEFAULT_AGING
    concurrency: int | None = None
    rate: Rate | None = None

    def check(self, error: ErrorClass = ConfigurationError) -> QueuePolicy:
        """Raise `error` naming the first bad value; return the policy with defaults filled
        in (`resume_depth`)."""
        for name in ("max_depth", "admit_depth", "shed_depth", "concurrency"):
            _count(name, getattr(self, name), error, minimum=1)
        _count("resume_depth", self.resume_depth, error, minimum=0)
        for name in ("admit_priority", "shed_priority"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not -1000 <= value <= 1000
            ):
                raise error(f"{name} must be an int within [-1000, 1000], got {shorten(value)}")
        if self.max_wait is not None:
            _seconds("max_wait", self.max_wait, error, upper=86400 * 366.0)
        _seconds("aging", self.aging, error, upper=MAX_AGING, allow_zero=True)
        if self.overload not in OVERLOAD_ACTIONS:
            choices = ", ".join(OVERLOAD_ACTIONS)
            raise error(f"overload must be one of {choices}, got {shorten(self.overload)}")
        if self.rate is not None and not isinstance(self.rate, Rate):
            raise error(f"rate must be a Rate, got {shorten(self.rate)}")
        for name in ("admit_depth", "shed_depth"):
            value = getattr(self, name)
            if value is not None and self.max_depth is not None and value > self.max_depth:
                raise error(
                    f"{name}={value} is above max_depth={self.max_depth}: a watermark must not "
                    "exceed the bound"
                )
        if (self.shed_depth is None) != (self.shed_priority is None):
            raise error("shedding needs both shed_depth and shed_priority")
        if self.overload == "shed" and self.shed_priority is None:
            raise error("overload='shed' needs shed_priority and shed_depth for the sweep")
        resume = self.resume_depth
        if self.shed_depth is None:
            if resume is not None:
                raise error("resume_depth needs shed_depth")
            return self
        if resume is None:
            return _replace(self, resume_depth=self.shed_depth // 2)
        if resume >= self.shed_depth:
            raise error(f"resume_depth={resume} must be below shed_depth={self.shed_depth}")
        return self

    @property
    def admits_all(self) -> bool:
        """True when no enqueue can be turned away or shed: nothing to check at enqueue."""
        return (
            self.max_depth is None
            and self.admit_depth is None
            and self.max_wait is None
            and self.shed_depth is None
        )

    @property
    def limited(self) -> bool:
        """True when the queue limits its own running jobs or starts."""
        return self.concurrency is not None or self.rate is not None

    def to_json(self) -> dict[str, Any]:
        """The policy as JSON values (the rate as its string form)."""
        out = asdict(self)
        out["rate"] = None if self.rate is None else str(self.rate)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueuePolicy:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        if values.get("rate") is not None:
            values["rate"] = Rate.parse(values["rate"])
        return cls(**values)


def _replace(policy: QueuePolicy, **changes: Any) -> QueuePolicy:
    from dataclasses import replace

    return replace(policy, **changes)


def _count(name: str, value: Any, error: ErrorClass, *, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= 2**31 - 1:
        raise error(f"{name} must be an int >= {minimum}, got {shorten(value)}")


def _seconds(
    name: str, value: Any, error: ErrorClass, *, upper: float, allow_zero: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{name} must be a number of seconds, got {shorten(value)}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not math.isfinite(value) or not low_ok or value > upper:
        bound = ">= 0" if allow_zero else "> 0"
        raise error(f"{name} must be {bound} and at most {upper:g} seconds, got {value!r}")


#: A task's limit key function: the job's arguments in, the key its limits count under out.
LimitKey = Callable[..., str]

#: The longest limit key, in characters: a key names a customer or a host, not a payload.
MAX_LIMIT_KEY = 200


def limit_key_problem(key: object) -> str | None:
    """Why `key` cannot be a limit key (not a str, too long, control characters, a lone
    surrogate), or None when it can."""
    if not isinstance(key, str):
        return f"returned {shorten(key)}, not a str"
    if len(key) > MAX_LIMIT_KEY:
        return f"returned {len(key)} characters, more than {MAX_LIMIT_KEY}"
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in key):
        return f"returned {shorten(key)}, which contains a control character"
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"returned {shorten(key)}, with a lone surrogate at index {exc.start}"
    return None
