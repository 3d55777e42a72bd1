"""Work shaping at enqueue: unique keys, idempotency keys and replace keys (no I/O).

Which job holds a key is read in the database, inside the enqueue's transaction and after
the keys are locked (`offload.backends.sql.jobs`); what each call of the enqueue then gets
is decided here, by `decide`, from those holders alone.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from offload.core.errors import (
    DuplicateJob,
    IdempotencyConflict,
    OffloadError,
    ValidationError,
    shorten,
)
from offload.core.states import FINISHED, JobState

#: The longest key of any kind, in characters.
MAX_KEY = 255
#: How long an idempotency key names its job by default: 24 hours.
DEFAULT_RETENTION = 86_400.0
#: The states in which a job holds its unique key by default: every state but finished.
NOT_FINISHED = tuple(s for s in JobState if s not in FINISHED)
#: What a duplicate enqueue does: answer with the holder, or raise DuplicateJob.
ON_DUPLICATE = ("return", "raise")


def check_storable(what: str, value: str, error: type[OffloadError] = ValidationError) -> None:
    """Refuse text that cannot be stored on both backends: a lone surrogate is not valid
    Unicode, and PostgreSQL text cannot hold NUL (SQLite would, so refuse it on both)."""
    if "\x00" in value:
        raise error(f"{what} {shorten(value)} contains a NUL character, which cannot be stored")
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(
            f"{what} {shorten(value)} contains a lone surrogate at index {exc.start}, "
            "which is not valid Unicode text"
        ) from None


def check_key(option: str, value: object, error: type[OffloadError] = ValidationError) -> str:
    """A key given as `option`: 1 to MAX_KEY characters of valid Unicode text without NUL."""
    if not isinstance(value, str):
        raise error(f"{option} must be a str, got {shorten(value)}")
    if not 1 <= len(value) <= MAX_KEY:
        raise error(
            f"{option} must be 1 to {MAX_KEY} characters, got {len(value)}: {shorten(value)}"
        )
    check_storable(option, value, error)
    return value


@dataclass(frozen=True, slots=True)
class Unique:
    """A task's uniqueness rule: while a job with the same key is in one of `states`
    (and, with `period`, was enqueued within the last `period` seconds), an enqueue with
    that key stores nothing and answers with that job.

    `key` None derives the key from the task name and the call's arguments. `states`
    defaults to every state but finished (succeeded, dead, cancelled) without a period,
    and to every state with one: `Unique(period=600)` allows one job per 10 minutes,
    whatever became of it. Finished states need a period (they would hold a key forever).
    """

    key: str | None = None
    #: Stored as a sorted tuple of JobStates.
    states: Collection[JobState | str] | None = None
    period: float | None = None

    def __post_init__(self) -> None:
        if self.key is not None:
            check_key("Unique key", self.key)
        if self.period is not None:
            period = self.period
            if isinstance(period, bool) or not isinstance(period, int | float):
                raise ValidationError(f"Unique period must be seconds, got {shorten(period)}")
            if not math.isfinite(period) or period <= 0:
                raise ValidationError(f"Unique period must be a finite number > 0, got {period!r}")
            object.__setattr__(self, "period", float(period))
        if self.states is not None:
            object.__setattr__(self, "states", self._states(self.states))

    def _states(self, given: object) -> tuple[JobState, ...]:
        """The states as JobStates: known, at least one, finished ones only with a period."""
        if isinstance(given, str) or not isinstance(given, Collection):
            raise ValidationError(
                f"Unique states must be a sequence of states, got {shorten(given)}"
            )
        states: list[JobState] = []
        for value in given:
            try:
                states.append(JobState(value))
            except ValueError:
                names = ", ".join(s.value for s in JobState)
                raise ValidationError(
                    f"Unique states: unknown job state {shorten(value)}; one of: {names}"
                ) from None
        if not states:
            raise ValidationError("Unique states must name at least one state")
        finished = sorted(s.value for s in states if s in FINISHED)
        if finished and self.period is None:
            raise ValidationError(
                f"Unique states {', '.join(finished)} are finished: without a period a "
                "finished job would hold the key forever; give a period too"
            )
        return tuple(sorted(set(states)))

    @property
    def held_in(self) -> tuple[JobState, ...]:
        """The states in which a job holds the key."""
        if self.states is not None:
            return tuple(JobState(s) for s in self.states)
        return tuple(JobState) if self.period is not None else NOT_FINISHED

    @classmethod
    def of(cls, value: object, error: type[OffloadError] = ValidationError) -> Unique | None:
        """The rule an option `unique=` names: True, a key, a Unique, or False/None."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, str):
            return cls(key=check_key("unique", value, error))
        if isinstance(value, Unique):
            return value
        raise error(f"unique must be True, a key (str) or offload.Unique, got {shorten(value)}")

    def key_for(
        self, task: str, signature: inspect.Signature | None, args: Any, kwargs: Any
    ) -> str:
        """The job's key: the given one, or a digest of the task name and the arguments,
        bound to the signature first (f(1), f(a=1) and f(a=1, b=default) are one key)."""
        if self.key is not None:
            return self.key
        arguments: Any = [list(args), kwargs]
        if signature is not None:
            bound = signature.bind(*args, **kwargs)  # checked already: it binds
            bound.apply_defaults()
            arguments = bound.arguments
        canonical = orjson.dumps([task, arguments], option=orjson.OPT_SORT_KEYS)
        return f"{task}:{hashlib.sha256(canonical).hexdigest()[:40]}"


@dataclass(frozen=True, slots=True)
class KeyRules:
    """How an insert treats its keys: the unique rule's states and period, what a duplicate
    does, whether a replace key also stops running jobs, how long idempotency keys hold."""

    unique_states: tuple[JobState, ...] = NOT_FINISHED
    unique_period: float | None = None
    on_duplicate: str = "return"
    replace_running: bool = False
    retention: float = DEFAULT_RETENTION


def check_on_duplicate(value: object, error: type[OffloadError] = ValidationError) -> str:
    """`on_duplicate`: "return" (the holder's handle) or "raise" (DuplicateJob)."""
    if value not in ON_DUPLICATE:
        raise error(f"on_duplicate must be 'return' or 'raise', got {shorten(value)}")
    return str(value)


def check_retention(value: object) -> float:
    """An idempotency retention: finite seconds > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"idempotency_retention must be seconds, got {shorten(value)}")
    if not math.isfinite(value) or value <= 0:
        raise ValidationError(f"idempotency_retention must be a finite number > 0, got {value!r}")
    return float(value)


class Idempotent(NamedTuple):
    """The job holding an idempotency key, with what it was enqueued with."""

    id: int
    task: str
    args: str
    kwargs: str


class Outcome(NamedTuple):
    """One call's outcome: a new job (`held` None, `first` None), the job holding its key
    (`held`), or the new job of an earlier call of the batch with the same key (`first`)."""

    held: int | None = None
    first: int | None = None

    @property
    def new(self) -> bool:
        return self.held is None and self.first is None


NEW = Outcome()


def decide(
    task: str,
    calls: Sequence[tuple[str, str, str | None, str | None]],
    unique: Mapping[str, int],
    idempotent: Mapping[str, Idempotent],
    on_duplicate: str,
) -> list[Outcome]:
    """Each call's outcome from the holders read in the database.

    `calls` are (args, kwargs, idempotency_key, unique_key) in batch order; `unique` maps
    a unique key to the job holding it, `idempotent` an idempotency key to its job. A held
    idempotency key with the same task and arguments answers with its job, with others
    raises IdempotencyConflict; a held unique key answers with its holder, or raises
    DuplicateJob when `on_duplicate` is "raise"; a key seen earlier in the batch points at
    that call (the storage seam takes idempotency keys in batches; `enqueue_many` does
    not). Raising means nothing is stored.
    """
    out: list[Outcome] = []
    first: dict[str, int] = {}
    named: dict[str, int] = {}  # idempotency key -> the call of the batch that stores it
    for position, (args, kwargs, idem, key) in enumerate(calls):
        where = None if len(calls) == 1 else position
        if idem is not None and idem in idempotent:
            held = idempotent[idem]
            if held.task != task or not _same(held.args, args) or not _same(held.kwargs, kwargs):
                raise IdempotencyConflict(idem, held.id)
            out.append(Outcome(held=held.id))
        elif idem is not None and idem in named:
            earlier = calls[named[idem]]
            if not _same(earlier[0], args) or not _same(earlier[1], kwargs):
                raise IdempotencyConflict(idem, None)
            out.append(Outcome(first=named[idem]))
        elif key is not None and (key in unique or key in first):
            holder = unique.get(key)
            if on_duplicate == "raise":
                raise DuplicateJob(key, holder, where)
            out.append(Outcome(held=holder) if holder is not None else Outcome(first=first[key]))
        else:
            if key is not None:
                first[key] = position
            if idem is not None:
                named[idem] = position
            out.append(NEW)
    return out


def _same(stored: str, given: str) -> bool:
    """Whether two JSON texts hold the same value, key order and spacing aside (compared
    as canonical text: Python's == would take 1, 1.0 and true for one value)."""
    return stored == given or _canonical(stored) == _canonical(given)


def _canonical(text: str) -> bytes:
    return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS)
