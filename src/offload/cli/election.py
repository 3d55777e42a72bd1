"""The maintenance election's options, shared by `offload worker` and `offload scheduler`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

F = TypeVar("F", bound=Callable[..., Any])


def election_options(command: F) -> F:
    """Add --elect/--no-elect and --leader-lease to a command, which gets them as one
    `election` mapping of the Worker's or Scheduler's keyword arguments given."""

    @functools.wraps(command)
    def with_election(*args: Any, **kwargs: Any) -> Any:
        election: dict[str, Any] = {"elect": kwargs.pop("elect")}
        lease = kwargs.pop("leader_lease")
        if lease is not None:
            election["leader_lease"] = lease
        return command(*args, election=election, **kwargs)

    wrapped: Any = click.option(
        "--leader-lease",
        type=float,
        metavar="SECONDS",
        help="How long a maintenance duty's lease lasts: a dead holder is replaced within "
        "it [default: 20; for a worker its --lease if shorter, at least 0.5].",
    )(with_election)
    wrapped = click.option(
        "--elect/--no-elect",
        default=True,
        show_default=True,
        help="Rescue (and with a scheduler sweep, roll up and prune) only while holding the "
        "duty's elected lease; --no-elect does every duty on this process's own timers.",
    )(wrapped)
    return cast(F, wrapped)
