"""--log-level and --log-format: one definition for every long-running command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from offload.runtime.logfmt import LOG_FORMATS

LOG_LEVELS = ("debug", "info", "warning", "error")
F = TypeVar("F", bound=Callable[..., Any])

_LEVEL_HELP = "Least severe log records written to stderr."


def log_options(level_help: str = "") -> Callable[[F], F]:
    """Add --log-level and --log-format to a command; `level_help` says more about levels."""

    def add(command: F) -> F:
        command = click.option(
            "--log-format",
            type=click.Choice(LOG_FORMATS),
            default="text",
            help="json: one JSON object per line (time, level, logger, message, job fields).",
        )(command)
        return click.option(
            "--log-level",
            type=click.Choice(LOG_LEVELS, case_sensitive=False),
            default="info",
            help=f"{_LEVEL_HELP} {level_help}".strip(),
        )(command)

    return add
