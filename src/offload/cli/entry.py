"""The `offload` entry point: runs the command group and turns every failure into one line.

A failure is printed as `error: <message>` on stderr, with exit code 1 (2 for usage errors,
130 when interrupted). An app module that raised while importing adds its traceback cut to
the user's own frames; any other exception is unexpected (a bug in offload or in the app):
its type and message, and its traceback with `-v`/`--traceback`. A group run without a
subcommand prints its help whole, on stderr with exit code 2, as click does.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import click
from click.core import ParameterSource

from offload.cli.context import AppLoader
from offload.cli.group import cli
from offload.core.errors import AppImportFailed, OffloadError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

#: Frames from these files are offload's or the import machinery's, not the user's.
_OFFLOAD_DIR = str(Path(__file__).resolve().parents[1])
_IMPORTLIB_DIR = str(Path(traceback.__file__).resolve().parent / "importlib")


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run `offload` with `argv` (default: sys.argv[1:]) and exit."""
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    options = AppLoader()
    try:
        code = cli.main(args=argv, prog_name="offload", standalone_mode=False, obj=options)
    except BrokenPipeError:
        # The reader went away (`offload jobs | head`): keep Python's exit-time flush quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except Exception as exc:
        return _report(exc, full_traceback=options.traceback)
    return code if isinstance(code, int) else 0


def _report(exc: Exception, *, full_traceback: bool) -> int:
    """Print why a command failed (one `error:` line, a traceback where it helps); return
    the exit code."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        exc.show()  # the help, whole
        return exc.exit_code
    detail = None
    code = EXIT_ERROR
    if isinstance(exc, click.BadParameter):
        message, code = _bad_parameter(exc), exc.exit_code
    elif isinstance(exc, click.UsageError):
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        message, code = exc.format_message() + hint, exc.exit_code
    elif isinstance(exc, click.ClickException):
        message, code = exc.format_message(), exc.exit_code
    elif isinstance(exc, click.Abort):
        message, code = "interrupted", EXIT_INTERRUPTED
    elif isinstance(exc, AppImportFailed):
        message, detail = str(exc), _traceback_of(exc.error, full=full_traceback)
    elif isinstance(exc, OffloadError):
        message = str(exc)
    else:
        hint = "" if full_traceback else " (run with -v for the traceback)"
        message = f"unexpected {type(exc).__name__}: {exc}{hint}"
        detail = _traceback_of(exc, full=True) if full_traceback else None
    _fail(message, code)
    if detail:
        click.echo(detail.rstrip(), err=True)
    return code


def _fail(message: str, code: int) -> int:
    """Print `message` as one `error:` line on stderr; return `code`."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    click.echo(f"error: {'; '.join(lines) or 'failed'}", err=True)
    return code


def _bad_parameter(exc: click.BadParameter) -> str:
    """Click's message, naming the environment variable when the bad value came from one
    (click names the option, which the user never typed)."""
    ctx, param = exc.ctx, exc.param
    if ctx is None or param is None or param.name is None:
        return exc.format_message()
    if ctx.get_parameter_source(param.name) is not ParameterSource.ENVIRONMENT:
        return exc.format_message()
    names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
    if not names and ctx.auto_envvar_prefix is not None:
        names = [f"{ctx.auto_envvar_prefix}_{param.name.upper()}"]
    given = [name for name in names if name in os.environ]
    if not given:
        return exc.format_message()
    return f"invalid value for {given[0]}: {exc.message}"


def _traceback_of(error: BaseException, *, full: bool) -> str:
    """The traceback of `error`; unless `full`, only the frames of the user's own files."""
    shown = traceback.TracebackException.from_exception(error)
    if not full:
        own = [frame for frame in shown.stack if _users(frame.filename)]
        shown.stack = traceback.StackSummary.from_list(own)
        shown.__cause__ = shown.__context__ = None
    return "".join(shown.format())


def _users(filename: str) -> bool:
    """True for a frame of the user's code (not offload's, not importlib's)."""
    if filename.startswith("<frozen importlib"):
        return False
    return not filename.startswith((_OFFLOAD_DIR, _IMPORTLIB_DIR))
