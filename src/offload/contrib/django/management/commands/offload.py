"""`manage.py offload <command> ...`: offload's command line on the project's App
(`manage.py offload worker`, `scheduler`, `serve`, `jobs`, ...; `manage.py offload --help`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "offload's command line on this project's tasks (manage.py offload --help)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("arguments", nargs=argparse.REMAINDER)

    def run_from_argv(self, argv: list[str]) -> None:
        """Everything after `offload` goes to offload's own command line, untouched."""
        from offload.cli.entry import run

        # manage.py has applied --settings and --pythonpath already.
        given = [a for a in argv[2:] if not a.startswith(("--settings", "--pythonpath"))]
        sys.exit(run(["--app", "offload.contrib.django.runtime:app", *given]))

    def handle(self, *args: Any, **options: Any) -> None:
        from offload.cli.entry import run

        code = run(["--app", "offload.contrib.django.runtime:app", *options["arguments"]])
        if code:
            sys.exit(code)
