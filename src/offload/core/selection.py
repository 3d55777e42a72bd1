"""Which jobs a bulk operation (retry, cancel, purge) takes, and the checks on it (no I/O).

A selection is ids and/or filters, all of which must hold. An empty one is refused unless
it says `all_jobs=True`: a forgotten filter must never mean "every job". Each operation
changes only jobs in the states it accepts; a `state` filter outside them is refused, as it
could only match nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypedDict

from offload.core.errors import ValidationError, shorten
from offload.core.events import JSONValue
from offload.core.states import QUEUED, RETRYABLE, JobState

#: The states each bulk operation changes; others are left as they are.
ACCEPTED: dict[str, frozenset[JobState]] = {
    "retry": RETRYABLE,
    "cancel": QUEUED | {JobState.RUNNING},
    "purge": frozenset({JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED, JobState.SHED}),
}


#: A bulk operation by name (`App.bulk`).
Operation = Literal["retry", "cancel", "purge"]


class JobSelection(TypedDict, total=False):
    """The keyword arguments of `App.retry_many`, `App.cancel_many`, `App.purge`,
    `App.bulk` and `App.count_jobs`.

    `before`/`after` bound the enqueue time: an aware datetime, or a timedelta meaning that
    long before the database's now. `error_type` is the exception type name of a job's
    latest error as stored (`ValueError`, `myapp.errors.Timeout`). `args_contains` is a
    JSON value contained in one positional argument of the job, or, when it is an object,
    in its keyword arguments, by PostgreSQL's jsonb containment on both backends
    (`offload.core.containment`): `{"user": 5}` finds `f(user=5, x=1)` and
    `f({"user": 5, "x": 1})`, not `f(user="5")`; `"a"` finds `f("a")`, and `["a"]` finds
    `f(["a", "b"])`. None means no such filter (a null argument is found inside an object
    or an array: `{"x": None}`, `[None]`).
    """

    ids: Sequence[int]
    queue: str
    state: JobState | str
    task: str
    before: datetime | timedelta
    after: datetime | timedelta
    error_type: str
    args_contains: JSONValue
    all_jobs: bool


@dataclass(frozen=True, slots=True)
class BulkProgress:
    """What `App.bulk` did so far: jobs of the selection it reached (in the states the
    operation accepts), jobs it changed (or deleted), and whether it is finished."""

    matched_so_far: int
    changed: int
    done: bool


def check_selection(operation: str, selection: JobSelection) -> None:
    """Refuse an empty selection (without `all_jobs`) and a state `operation` never changes."""
    given = [key for key, value in selection.items() if key != "all_jobs" and value is not None]
    if not given and not selection.get("all_jobs"):
        raise ValidationError(
            f"{operation} needs job ids or at least one filter; to {operation} every job it "
            "accepts, say so explicitly (all_jobs=True, or --all on the command line)"
        )
    state = selection.get("state")
    if state is not None:
        accepted = ACCEPTED[operation]
        try:
            wanted = JobState(state)
        except ValueError:
            wanted = None
        if wanted not in accepted:
            names = ", ".join(sorted(s.value for s in accepted))
            shown = shorten(str(wanted) if wanted is not None else state)
            raise ValidationError(f"{operation} takes jobs that are {names}; not {shown}")


def check_moment(what: str, value: datetime | timedelta, now: Callable[[], datetime]) -> datetime:
    """An aware datetime for a time bound; a timedelta counts back from `now()` (the
    database's clock, read only then)."""
    if isinstance(value, timedelta):
        try:
            return now() - value
        except OverflowError:
            raise ValidationError(f"{what} is too far back: {value}") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError(
            f"{what} must be an aware datetime or a timedelta, got {shorten(value)}"
        )
    return value
