"""Which jobs a bulk operation (retry, cancel, purge) takes, and the checks on it (no I/O).

A selection is ids and/or filters, all of which must hold. An empty one is refused unless
it says `all_jobs=True`: a forgotten filter must never mean "every job". Each operation
changes only jobs in the states it accepts; a `state` filter outside them is refused, as it
could only match nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypedDict

from offload.core.errors import ValidationError, shorten
from offload.core.states import QUEUED, RETRYABLE, JobState

#: The states each bulk operation changes; others are left as they are.
ACCEPTED: dict[str, frozenset[JobState]] = {
    "retry": RETRYABLE,
    "cancel": QUEUED | {JobState.RUNNING},
    "purge": frozenset({JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED, JobState.SHED}),
}


class JobSelection(TypedDict, total=False):
    """The keyword arguments of `App.retry_many`, `App.cancel_many` and `App.purge`.

    `before`/`after` bound the enqueue time: an aware datetime, or a timedelta meaning that
    long before the database's now.
    """

    ids: Sequence[int]
    queue: str
    state: JobState | str
    task: str
    before: datetime | timedelta
    after: datetime | timedelta
    all_jobs: bool


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
