"""Flow control as plain values: queue policies, rate limits, task limits (no I/O).

A `QueuePolicy` is what `App.queue` declares and `offload queues set` changes; the database
stores it (one row per queue) and enforces it in the enqueue's or the claim's transaction.
Validation lives here so that code, CLI and HTTP refuse the same bad values with the same
words; which error class they raise is the caller's (declaration or call).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from offload.core.errors import (
    BackPressure,
    ConfigurationError,
    OffloadError,
    Overloaded,
    QueueFull,
    _did_you_mean,
    shorten,
)

#: Seconds of head start per priority step when a queue sets no `aging`: a job of priority
#: p is claimed before jobs of priority p + 1 that became due more than 60 s after it.
DEFAULT_AGING = 60.0

#: The largest `aging`: 1000 priority steps of it stay within 32 years of head start.
MAX_AGING = 1_000_000.0

#: Bounds of `retry_after`, in seconds: a refused producer waits at least the floor (no
#: busy retries) and at most the ceiling (also the answer when no drain rate is measured).
RETRY_AFTER_FLOOR = 1.0
RETRY_AFTER_CEILING = 60.0

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

    def changed(self, changes: Mapping[str, Any], error: ErrorClass) -> QueuePolicy:
        """This policy with `changes` (field names, the rate as `rate_limit`) applied and
        checked: None clears a bound or restores a default, and `resume_depth` follows a
        new `shed_depth` unless given. Raise `error` naming the first bad key or value."""
        unknown = sorted(changes.keys() - SETTINGS)
        if unknown:
            hint = _did_you_mean(unknown[0], sorted(SETTINGS), "settings")
            raise error(f"no queue setting {shorten(unknown[0])}{hint}")
        values = {key: _DEFAULTS[key] if value is None else value for key, value in changes.items()}
        if "rate_limit" in values:
            given = values.pop("rate_limit")
            values["rate"] = None if given is None else Rate.parse(given, error)
        if "shed_depth" in changes and "resume_depth" not in changes:
            values["resume_depth"] = None
        return _replace(self, **values).check(error)


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


@dataclass(frozen=True, slots=True)
class Load:
    """What an enqueue into a queue with an admission policy is decided on, read in its
    transaction: jobs not yet started (`depth`, counted up to the largest bound plus the
    batch) and the age of its oldest due job in seconds (`oldest_wait`, None if not read)."""

    depth: int
    oldest_wait: float | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """An enqueue turned away: `full` (max_depth) or else overloaded (a watermark, named in
    `reason`); `excess` is how far over the bound it would be, in jobs (`per_job` True) or
    in seconds of wait."""

    full: bool
    excess: float
    reason: str
    depth: int
    limit: int
    per_job: bool = True

    def error(self, queue: str, drain_rate: float) -> BackPressure:
        """The exception to raise, with `retry_after` from the queue's drain rate."""
        wait = retry_after(self.excess, drain_rate) if self.per_job else _clamp(self.excess)
        if self.full:
            return QueueFull(queue, self.depth, self.limit, wait)
        return Overloaded(queue, self.reason, wait)


#: What `admit` decides: store the jobs as usual, store them `shed`, or a refusal.
ADMIT: Literal["admit"] = "admit"
SHED: Literal["shed"] = "shed"
Decision = Literal["admit", "shed"] | Refusal


def admit(policy: QueuePolicy, load: Load, n: int, priority: int) -> Decision:
    """Decide an enqueue of `n` jobs of `priority` into a queue under `load`.

    `max_depth` is hard: past it every enqueue is refused, whatever its priority. Below it,
    a job under `admit_priority` meets admission control once the queue would be over
    `admit_depth` or its oldest due job has waited over `max_wait` (refused, or shed with
    `overload="shed"`), and a job under `shed_priority` is shed once the queue would be
    over `shed_depth`. Every depth compared is the one the queue would have with the batch.
    """
    after = load.depth + n
    if policy.max_depth is not None and after > policy.max_depth:
        return Refusal(True, after - policy.max_depth, "max_depth", load.depth, policy.max_depth)
    if priority < policy.admit_priority:
        reason, excess, per_job, limit = _over_watermark(policy, load, after)
        if reason:
            if policy.overload == "shed":
                return SHED
            return Refusal(False, excess, reason, load.depth, limit, per_job)
    if (
        policy.shed_depth is not None
        and policy.shed_priority is not None
        and after > policy.shed_depth
        and priority < policy.shed_priority
    ):
        return SHED
    return ADMIT


def _over_watermark(policy: QueuePolicy, load: Load, after: int) -> tuple[str, float, bool, int]:
    """Which admission watermark the queue is over, with the figures; '' if none."""
    if policy.admit_depth is not None and after > policy.admit_depth:
        reason = f"{load.depth} jobs waiting, admit_depth {policy.admit_depth}"
        return reason, after - policy.admit_depth, True, policy.admit_depth
    wait = load.oldest_wait
    if policy.max_wait is not None and wait is not None and wait > policy.max_wait:
        reason = f"oldest job waiting {wait:.1f} s, max_wait {policy.max_wait:g} s"
        return reason, wait - policy.max_wait, False, load.depth
    return "", 0.0, True, 0


def retry_after(excess_jobs: float, drain_rate: float) -> float:
    """Seconds until `excess_jobs` have drained at `drain_rate` jobs per second, within
    [RETRY_AFTER_FLOOR, RETRY_AFTER_CEILING]; the ceiling when no rate is measured."""
    if drain_rate <= 0 or not math.isfinite(drain_rate):
        return RETRY_AFTER_CEILING
    return _clamp(excess_jobs / drain_rate)


def _clamp(seconds: float) -> float:
    return min(max(seconds, RETRY_AFTER_FLOOR), RETRY_AFTER_CEILING)


#: Seconds over which a worker measures its drain rates (completions per second per queue).
DRAIN_WINDOW = 60.0


class DrainMeter:
    """A worker's completions per queue over the last `window` seconds, in one-second
    buckets: what it reports with its heartbeat as `{queue: per second}`. Times are the
    caller's monotonic seconds."""

    def __init__(self, started: float, window: float = DRAIN_WINDOW) -> None:
        self.started, self.window = started, window
        self._buckets: dict[str, dict[int, int]] = {}

    def record(self, queue: str, at: float, n: int = 1) -> None:
        """`n` jobs of `queue` ended (in any end state) at `at`."""
        buckets = self._buckets.setdefault(queue, {})
        second = int(at)
        buckets[second] = buckets.get(second, 0) + n

    def rates(self, at: float) -> dict[str, float]:
        """Completions per second per queue over the window (over the time since the start
        while younger than it, so that a new worker does not under-report); old buckets go."""
        oldest = int(at - self.window)
        span = max(min(self.window, at - self.started), 1.0)
        out: dict[str, float] = {}
        for queue, buckets in list(self._buckets.items()):
            for second in [s for s in buckets if s <= oldest]:
                del buckets[second]
            if buckets:
                out[queue] = round(sum(buckets.values()) / span, 6)
            else:
                del self._buckets[queue]
        return out


#: What `QueuePolicy.changed` (so `App.set_queue`, `offload queues set`) takes: the policy's
#: fields, the rate given as `rate_limit` as in `App.queue`.
SETTINGS = frozenset({f.name for f in fields(QueuePolicy)} - {"rate"} | {"rate_limit"})
#: What None restores for each setting: no bound, or the field's default.
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(QueuePolicy)} | {"rate_limit": None}

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
