"""--keep-succeeded, --keep-cancelled and --keep-dead: how long a scheduler keeps finished
jobs before it prunes them, for `offload scheduler` and `offload worker --scheduler`."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click
from click.core import ParameterSource

from offload.core.states import JobState
from offload.core.times import parse_age
from offload.runtime.scheduler import DEFAULT_RETENTION

F = TypeVar("F", bound=Callable[..., Any])

#: The option of each finished state.
OPTIONS = {
    JobState.SUCCEEDED: "keep_succeeded",
    JobState.CANCELLED: "keep_cancelled",
    JobState.DEAD: "keep_dead",
}
#: What the options take, for help and errors.
FORMS = "an age (90m, 12h, 7d, 2w) or 'never'"


class KeepType(click.ParamType[float, Any]):
    """How long to keep a finished job, in seconds: an age such as `7d`, or `never` (inf)."""

    name = "AGE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        if text.lower() == "never":
            return math.inf
        try:
            age = parse_age(text)
        except OverflowError:
            age = None
        if age is None:
            self.fail(f"{text!r} is not a retention period: give {FORMS}", param, ctx)
        return age.total_seconds()


def retention_options(command: F) -> F:
    """Add the --keep-* options to a command, which gets them as one `retention` mapping
    (finished state -> seconds; a state kept forever is left out), or None if none was given
    (the scheduler's defaults, which the options show)."""

    @functools.wraps(command)
    def with_retention(*args: Any, **kwargs: Any) -> Any:
        given = {state: kwargs.pop(name) for state, name in OPTIONS.items()}
        source = click.get_current_context().get_parameter_source
        defaults = all(source(name) is ParameterSource.DEFAULT for name in OPTIONS.values())
        retention = {state: seconds for state, seconds in given.items() if seconds != math.inf}
        return command(*args, retention=None if defaults else retention, **kwargs)

    wrapped: Any = with_retention
    for state, name in reversed(OPTIONS.items()):
        wrapped = click.option(
            f"--{name.replace('_', '-')}",
            name,
            type=KeepType(),
            metavar="AGE",
            default=f"{DEFAULT_RETENTION[state] / 86400:g}d",
            help=f"How long {state} jobs are kept before they are pruned: {FORMS}.",
        )(wrapped)
    return cast(F, wrapped)
