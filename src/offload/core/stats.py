"""Roll-ups of the job events for charts (no I/O): per minute and queue, jobs enqueued,
started, succeeded, failed and dead, and a histogram of the wait from due to start.

The wait of a start is measured for first attempts only: from the job's enqueue, or from
its `run_at` when it was enqueued with a delay, to its `started` event; a retry's wait is
its backoff, which is no queue's latency. It goes into a log-scale histogram with two bins
per doubling from 1 ms (`latency_bin`), so a quantile read from it (`quantile`) is the
geometric middle of its bin, within a factor of 2**0.25 (±19%) of the true value, and never
above the bucket's largest wait, which is kept exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from offload.core.errors import ValidationError, shorten

#: Seconds of one stored bucket: the finest chart resolution.
MINUTE = 60
#: Minute buckets are kept 8 days: a week's chart and a day's slack for a late look.
STATS_RETENTION = 8 * 86400.0
#: The upper bound of bin 0, and the unit the bins double from.
LATENCY_BASE = 0.001
#: Bins per doubling of the wait.
BINS_PER_DOUBLING = 2
#: The last bin, open-ended: waits from about 8.6 days up.
LAST_BIN = 60
#: Points one `App.stats` call returns, at most (a week of minutes is 10,080).
MAX_POINTS = 20_000

#: Event kinds and the counters they add to (a dead attempt failed, and the job is dead).
COUNTED: Mapping[str, tuple[str, ...]] = {
    "enqueued": ("enqueued",),
    "started": ("started",),
    "succeeded": ("succeeded",),
    "retrying": ("failed",),
    "dead": ("failed", "dead"),
}


def latency_bin(seconds: float) -> int:
    """The histogram bin of a wait: 0 below 1 ms, then two bins per doubling."""
    if seconds < LATENCY_BASE:
        return 0
    index = math.floor(BINS_PER_DOUBLING * math.log2(seconds / LATENCY_BASE)) + 1
    return min(index, LAST_BIN)


def bin_bounds(index: int) -> tuple[float, float]:
    """The waits a bin holds, [low, high) seconds (the last bin's high is infinite)."""
    if index == 0:
        return 0.0, LATENCY_BASE
    low = LATENCY_BASE * 2 ** ((index - 1) / BINS_PER_DOUBLING)
    high = math.inf if index >= LAST_BIN else LATENCY_BASE * 2 ** (index / BINS_PER_DOUBLING)
    return low, high


@dataclass(slots=True)
class Tally:
    """One bucket's counts and wait histogram (bin -> starts), added up as events come."""

    enqueued: int = 0
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    dead: int = 0
    latency_n: int = 0
    latency_sum: float = 0.0
    latency_max: float | None = None
    bins: dict[int, int] = field(default_factory=dict)

    def count(self, kind: str, wait: float | None) -> None:
        """Add one event of `kind` (`wait`: a first start's wait, in seconds)."""
        for name in COUNTED.get(kind, ()):
            setattr(self, name, getattr(self, name) + 1)
        if wait is not None:
            wait = max(wait, 0.0)  # clocks of one database: only rounding goes below 0
            self.latency_n += 1
            self.latency_sum += wait
            self.latency_max = wait if self.latency_max is None else max(self.latency_max, wait)
            index = latency_bin(wait)
            self.bins[index] = self.bins.get(index, 0) + 1

    def add(self, other: Tally) -> None:
        """Add another bucket's tally to this one."""
        self.enqueued += other.enqueued
        self.started += other.started
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.dead += other.dead
        self.latency_n += other.latency_n
        self.latency_sum += other.latency_sum
        if other.latency_max is not None:
            self.latency_max = max(self.latency_max or 0.0, other.latency_max)
        for index, n in other.bins.items():
            self.bins[index] = self.bins.get(index, 0) + n


def quantile(bins: Mapping[int, int], q: float, largest: float | None) -> float | None:
    """The `q` quantile (0-1) of the waits in `bins`: the geometric middle of the bin
    holding it, at most `largest`; None without any wait."""
    total = sum(bins.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(bins):
        seen += bins[index]
        if seen >= rank:
            low, high = bin_bounds(index)
            middle = low / 2 if index == 0 else math.sqrt(low * high) if high < math.inf else low
            return middle if largest is None else min(middle, largest)
    raise AssertionError("unreachable: the ranks add up to the total")


def bucket_of(epoch: float) -> float:
    """The start of the minute bucket of a time, in epoch seconds."""
    return math.floor(epoch / MINUTE) * MINUTE


@dataclass(frozen=True, slots=True)
class StatsPoint:
    """One bucket of a chart: from `at`, jobs enqueued, started, succeeded, failed (an
    attempt that errored: retried or dead) and dead, and the 50th and 95th percentile of
    the wait from due to first start (seconds; None without a first start)."""

    at: datetime
    enqueued: int
    started: int
    succeeded: int
    failed: int
    dead: int
    latency_p50: float | None
    latency_p95: float | None


def check_window(window: timedelta, bucket_seconds: int) -> int:
    """The number of points of a chart, or ValidationError for a bad window or bucket."""
    if isinstance(bucket_seconds, bool) or not isinstance(bucket_seconds, int):
        raise ValidationError(f"bucket_seconds must be an int, got {shorten(bucket_seconds)}")
    if bucket_seconds <= 0 or bucket_seconds % MINUTE:
        raise ValidationError(
            f"bucket_seconds must be a positive multiple of {MINUTE}, got {bucket_seconds}"
        )
    if not isinstance(window, timedelta) or window <= timedelta(0):
        raise ValidationError(f"window must be a positive timedelta, got {shorten(window)}")
    points = math.ceil(window.total_seconds() / bucket_seconds)
    if points > MAX_POINTS:
        raise ValidationError(
            f"window / bucket_seconds makes {points} points, more than {MAX_POINTS}: "
            "take larger buckets"
        )
    return points


def chart(
    rows: Iterable[tuple[float, Tally]], end: float, points: int, bucket_seconds: int
) -> list[StatsPoint]:
    """`points` buckets of `bucket_seconds` up to the one holding `end` (epoch seconds),
    oldest first, each adding up the minute `rows` (bucket start, tally) within it; a
    bucket without rows is there with zeros."""
    last = math.floor(end / bucket_seconds) * bucket_seconds
    first = last - (points - 1) * bucket_seconds
    sums = [Tally() for _ in range(points)]
    for start, tally in rows:
        index = int((start - first) // bucket_seconds)
        if 0 <= index < points:
            sums[index].add(tally)
    return [
        StatsPoint(
            at=datetime.fromtimestamp(first + i * bucket_seconds, UTC),
            enqueued=t.enqueued,
            started=t.started,
            succeeded=t.succeeded,
            failed=t.failed,
            dead=t.dead,
            latency_p50=quantile(t.bins, 0.50, t.latency_max),
            latency_p95=quantile(t.bins, 0.95, t.latency_max),
        )
        for i, t in enumerate(sums)
    ]


__all__ = [
    "MINUTE",
    "STATS_RETENTION",
    "StatsPoint",
    "Tally",
    "bin_bounds",
    "bucket_of",
    "chart",
    "check_window",
    "latency_bin",
    "quantile",
]
