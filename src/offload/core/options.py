"""Task options and the retry policy; validated when a task is declared.

The same rules check the options of one enqueue (`Task.options`): a bad value there is a
`ValidationError` (bad input to a call), at declaration a `ConfigurationError`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from offload.core.batch import BatchOptions
from offload.core.errors import ConfigurationError, OffloadError, ValidationError, shorten
from offload.core.flow import LimitKey, Rate, TaskLimits
from offload.core.shaping import Unique, check_on_duplicate, check_storable
from offload.core.states import JobState
from offload.core.times import EARLIEST, LATEST, MAX_DELAY
from offload.core.workflow import OnParentFailure

#: Which error a rule raises: ConfigurationError at declaration, ValidationError per call.
ErrorClass = type[OffloadError]


def _positive(
    name: str, value: float, *, allow_zero: bool = False, error: ErrorClass = ConfigurationError
) -> float:
    """Return `value` as a float, refusing negatives, NaN and non-numbers with a named error."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{name} must be a number, got {shorten(value)}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise error(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def check_count(name: str, value: int, error: ErrorClass = ConfigurationError) -> int:
    """A whole number >= 1 (a size, a limit), or a named error: not a bool, not a float."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(f"{name} must be an int >= 1, got {shorten(value)}")
    return value


def _name(kind: str, value: str, error: ErrorClass = ConfigurationError) -> str:
    """Validate a queue/task name: non-empty text without control characters, at most 200."""
    if not isinstance(value, str) or not value or len(value) > 200:
        raise error(f"{kind} name must be 1-200 characters of text, got {shorten(value)}")
    if any(ord(ch) < 32 for ch in value):
        raise error(f"{kind} name {value!r} contains a control character")
    check_storable(f"{kind} name", value, error)
    return value


#: The kinds of executor a job can run in.
EXECUTORS = ("process", "thread", "async")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: delay = base * factor**(attempt-1), capped, +/- jitter."""

    max_attempts: int = 3
    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        check_max_attempts(self.max_attempts)
        _positive("retry base", self.base, allow_zero=True)
        _positive("retry factor", self.factor)
        if _positive("retry max_delay", self.max_delay, allow_zero=True) > MAX_DELAY:
            raise ConfigurationError(
                f"retry max_delay must be at most {MAX_DELAY:.0f} seconds (100 years), "
                f"got {self.max_delay!r}"
            )
        if not 0 <= _positive("retry jitter", self.jitter, allow_zero=True) <= 1:
            raise ConfigurationError(f"retry jitter must be within [0, 1], got {self.jitter}")
        if self.base > self.max_delay:
            raise ConfigurationError(
                f"retry base ({self.base}) must not exceed max_delay ({self.max_delay})"
            )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the attempt after `attempt` (1-based); within [base, max]."""
        exponent = max(attempt - 1, 0)
        try:
            growth = self.factor**exponent
        except OverflowError:  # far past any cap
            growth = math.inf
        raw = min(self.max_delay, self.base * growth) if self.base else 0.0
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return min(self.max_delay, max(self.base, raw * spread))


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """How jobs of a task are queued, retried and leased; defaults for every enqueue."""

    queue: str = "default"
    priority: int = 0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Wall-clock seconds a run may take.
    timeout: float | None = None
    #: CPU seconds a run may use (process executor).
    cpu_seconds: float | None = None
    #: Memory a run may add to its process, in MiB (process executor).
    memory_mb: float | None = None
    #: Where the job runs: "process", "thread" or "async"; None = the worker's choice
    #: ("async" for `async def` tasks).
    executor: str | None = None
    #: Jobs of this task running at once across every worker (per limit key if given).
    concurrency: int | None = None
    #: Starts of this task per window across every worker (per limit key if given).
    rate_limit: Rate | None = None
    #: The job's arguments -> the key its limits count under (a customer, a host).
    limit_key: LimitKey | None = None
    #: Called by the sweep with shed jobs' (args, kwargs) instead of re-admitting them.
    sweep: Callable[[list[tuple[list[Any], dict[str, Any]]]], Any] | None = None
    #: While a job of this task with the same key holds it, an enqueue stores nothing.
    unique: Unique | None = None
    #: What a duplicate enqueue does: "return" the holder's handle, or "raise" DuplicateJob.
    on_duplicate: str = "return"
    #: How a batch task gathers its jobs into one call (None: a task of single jobs).
    batch: BatchOptions | None = None

    def __post_init__(self) -> None:
        _name("queue", self.queue)
        object.__setattr__(self, "unique", Unique.of(self.unique, ConfigurationError))
        check_on_duplicate(self.on_duplicate, ConfigurationError)
        if self.batch is not None and (self.concurrency or self.rate_limit or self.limit_key):
            raise ConfigurationError(
                "a batch task takes no concurrency, rate_limit or limit_key: its claims "
                "count no task limit; limit its queue (concurrency) instead"
            )
        if self.concurrency is not None and (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or not 1 <= self.concurrency <= 2**31 - 1
        ):
            raise ConfigurationError(
                f"concurrency must be an int >= 1, got {shorten(self.concurrency)}"
            )
        if self.rate_limit is not None:
            object.__setattr__(self, "rate_limit", Rate.parse(self.rate_limit))
        if self.limit_key is not None:
            if not callable(self.limit_key):
                raise ConfigurationError(
                    f"limit_key must be callable, got {shorten(self.limit_key)}"
                )
            if self.concurrency is None and self.rate_limit is None:
                raise ConfigurationError(
                    "limit_key needs concurrency or rate_limit to count against"
                )
        if self.sweep is not None and not callable(self.sweep):
            raise ConfigurationError(f"sweep must be callable, got {shorten(self.sweep)}")
        check_priority(self.priority)
        for name in ("timeout", "cpu_seconds", "memory_mb"):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value)
        if self.executor not in (None, *EXECUTORS):
            raise ConfigurationError(
                f"unknown executor {self.executor!r}; one of {', '.join(EXECUTORS)}"
            )
        if self.executor in ("thread", "async"):
            self.check_process_limits(f"executor={self.executor!r}")

    def check_process_limits(self, runs_on: str) -> None:
        """Refuse CPU and memory limits for jobs that run on `runs_on`: only a child process
        can enforce them."""
        for name in ("cpu_seconds", "memory_mb"):
            if getattr(self, name) is not None:
                raise ConfigurationError(
                    f"{name} is enforced only by the process executor, not by {runs_on}; "
                    "declare the task with executor='process' or drop the limit"
                )

    @property
    def limits(self) -> TaskLimits | None:
        """The task's global limits, or None when it has none."""
        if self.concurrency is None and self.rate_limit is None:
            return None
        return TaskLimits(self.concurrency, self.rate_limit, self.limit_key is not None)

    @property
    def has_process_limits(self) -> bool:
        """True when the task sets a limit only a child process can enforce."""
        return self.cpu_seconds is not None or self.memory_mb is not None


def check_name(kind: str, value: str, error: ErrorClass = ConfigurationError) -> str:
    """The name rule, for queue, task and schedule names (`error` for a per-call name)."""
    return _name(kind, value, error)


def check_priority(value: int, error: ErrorClass = ConfigurationError) -> int:
    """A priority: an int within [-1000, 1000]; higher runs first."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"priority must be an int, got {shorten(value)}")
    if not -1000 <= value <= 1000:
        raise error(f"priority must be within [-1000, 1000], got {shorten(value)}")
    return value


#: The most attempts a job may have (PostgreSQL stores them as a 32-bit integer, and a
#: retry adds a task's budget to the attempts made).
MAX_ATTEMPTS = 1_000_000


def check_max_attempts(value: int, error: ErrorClass = ConfigurationError) -> int:
    """Attempts before a job is dead: an int within [1, MAX_ATTEMPTS]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"max_attempts must be an int, got {shorten(value)}")
    if not 1 <= value <= MAX_ATTEMPTS:
        raise error(f"max_attempts must be within [1, {MAX_ATTEMPTS}], got {shorten(value)}")
    return value


def check_delay(value: float) -> float:
    """A delay given at enqueue: seconds within [0, MAX_DELAY] (100 years)."""
    delay = _positive("delay", value, allow_zero=True, error=ValidationError)
    if delay > MAX_DELAY:
        raise ValidationError(
            f"delay must be at most {MAX_DELAY:.0f} seconds (100 years), got {value!r}"
        )
    return delay


def check_run_at(value: datetime) -> float:
    """An exact run time given at enqueue (`at=`): an aware datetime within
    [EARLIEST, LATEST], 1970-01-01 to 9999-12-31 23:59:59 UTC; returns epoch seconds."""
    if not isinstance(value, datetime):
        raise ValidationError(f"at must be a datetime, got {shorten(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"at={value!r} has no time zone; use an aware datetime")
    epoch = value.timestamp()
    if not EARLIEST.timestamp() <= epoch <= LATEST.timestamp():
        raise ValidationError(
            f"at={value.isoformat()} is outside the times offload stores "
            f"({EARLIEST.isoformat()} to {LATEST.isoformat()})"
        )
    return epoch


def check_text(what: str, value: str) -> str:
    """Text given to a call (an idempotency key, a filter): a str of valid Unicode."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a str, got {shorten(value)}")
    check_storable(what, value)
    return value


def check_state(value: JobState | str) -> JobState:
    """A job state given to a call, by value or name."""
    try:
        return JobState(value)
    except ValueError:
        names = ", ".join(s.value for s in JobState)
        raise ValidationError(f"unknown job state {shorten(value)}; one of: {names}") from None


def check_page(before_id: int | None, limit: int) -> None:
    """A page of a listing: `before_id` a job id (int) or None, `limit` an int >= 1."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError(f"limit must be a positive int, got {shorten(limit)}")
    if before_id is not None and type(before_id) is not int:
        raise ValidationError(f"before_id must be a job id (int), got {shorten(before_id)}")


@dataclass(frozen=True, slots=True)
class EnqueueOptions:
    """Per-call overrides of a task's defaults (`Task.options`); None keeps the default."""

    queue: str | None = None
    priority: int | None = None
    delay: float = 0.0
    #: An exact time to run at (epoch seconds), stored as given: no client clock involved.
    run_at: float | None = None
    max_attempts: int | None = None
    idempotency_key: str | None = None
    meta: dict[str, Any] | None = None
    #: The uniqueness rule for these calls: None keeps the task's, False drops it.
    unique: Unique | bool | None = None
    on_duplicate: str | None = None
    #: Storing the job cancels queued jobs with this key (and, with `replace_running`,
    #: asks running ones to stop).
    replace: str | None = None
    replace_running: bool = False
    #: The event channel the jobs' changes are published on.
    channel: str | None = None
    #: Stored jobs the new ones wait for (`waiting` until every one is over), and what a
    #: parent ending dead or cancelled does to them.
    depends_on: tuple[int, ...] = ()
    on_parent_failure: OnParentFailure = OnParentFailure.FAIL


class BatchTaskKeywords(TypedDict, total=False):
    """The options `App.batch_task` shares with `App.task` (see `TaskOptions` for each);
    `max_attempts` is a shorthand for `retry=RetryPolicy(max_attempts=...)`."""

    name: str | None
    queue: str
    priority: int
    max_attempts: int
    retry: RetryPolicy | None
    timeout: float | None
    cpu_seconds: float | None
    memory_mb: float | None
    executor: str | None
    sweep: Callable[[list[tuple[list[Any], dict[str, Any]]]], Any] | None
    unique: bool | str | Unique | None
    on_duplicate: str


class TaskKeywords(BatchTaskKeywords, total=False):
    """The options of `App.task`: the shared ones and the task limits."""

    concurrency: int | None
    rate_limit: Rate | str | tuple[int, float] | None
    limit_key: LimitKey | None


#: Every keyword `App.task` takes (`App.batch_task` takes these less the task limits).
TASK_KEYWORDS = TaskKeywords.__optional_keys__


def task_options(
    keywords: TaskKeywords | BatchTaskKeywords, batch: BatchOptions | None = None
) -> TaskOptions:
    """A task's options from a declaration's keywords (`name` is not an option: the caller
    takes it); an unknown keyword, or `max_attempts` differing from `retry`'s, is refused."""
    given: dict[str, Any] = dict(keywords)
    unknown = sorted(set(given) - TASK_KEYWORDS)
    if unknown:
        raise ConfigurationError(f"unknown task option {unknown[0]!r}")
    given.pop("name", None)
    max_attempts = given.pop("max_attempts", 3)
    retry: RetryPolicy | None = given.pop("retry", None)
    if retry is not None and max_attempts not in (3, retry.max_attempts):
        raise ConfigurationError("give max_attempts either directly or in retry, not both")
    rate = given.pop("rate_limit", None)
    return TaskOptions(
        retry=retry or RetryPolicy(max_attempts=max_attempts),
        rate_limit=None if rate is None else Rate.parse(rate),
        batch=batch,
        **given,
    )
