"""The `offload` entry point: runs the command group and turns failures into one line.

An `OffloadError` or a usage error is printed as `error: <message>` on stderr, with exit
code 1 (2 for usage errors); only a bug in offload or in the app shows a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from offload.cli.group import cli
from offload.core.errors import OffloadError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run `offload` with `argv` (default: sys.argv[1:]) and exit."""
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    try:
        code = cli.main(args=argv, prog_name="offload", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        return _fail(exc.format_message() + hint, exc.exit_code)
    except click.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code)
    except click.Abort:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except OffloadError as exc:
        return _fail(str(exc), EXIT_ERROR)
    except BrokenPipeError:
        # The reader went away (`offload jobs | head`): keep Python's exit-time flush quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    return code if isinstance(code, int) else 0


def _fail(message: str, code: int) -> int:
    """Print `message` as one `error:` line on stderr; return `code`."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    click.echo(f"error: {'; '.join(lines) or 'failed'}", err=True)
    return code
