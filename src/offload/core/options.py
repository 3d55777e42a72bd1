"""Task options and the retry policy; validated when a task is declared."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from offload.core.errors import ConfigurationError


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return `value` as a float, refusing negatives, NaN and non-numbers with a named error."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _name(kind: str, value: str) -> str:
    """Validate a queue/task name: non-empty text without control characters, at most 200."""
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ConfigurationError(f"{kind} name must be 1-200 characters of text, got {value!r}")
    if any(ord(ch) < 32 for ch in value):
        raise ConfigurationError(f"{kind} name {value!r} contains a control character")
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
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ConfigurationError(f"max_attempts must be an int, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be >= 1, got {self.max_attempts}")
        _positive("retry base", self.base, allow_zero=True)
        _positive("retry factor", self.factor)
        _positive("retry max_delay", self.max_delay, allow_zero=True)
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

    def __post_init__(self) -> None:
        _name("queue", self.queue)
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ConfigurationError(f"priority must be an int, got {self.priority!r}")
        if not -1000 <= self.priority <= 1000:
            raise ConfigurationError(f"priority must be within [-1000, 1000], got {self.priority}")
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
    def has_process_limits(self) -> bool:
        """True when the task sets a limit only a child process can enforce."""
        return self.cpu_seconds is not None or self.memory_mb is not None


def check_name(kind: str, value: str) -> str:
    """Public wrapper of the name rule, for queue and task names given at enqueue time."""
    return _name(kind, value)


def check_delay(value: float) -> float:
    """Validate a delay in seconds (>= 0)."""
    return _positive("delay", value, allow_zero=True)


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
