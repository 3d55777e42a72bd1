"""Run one scheduler replica of tests.apps.cron: `python -m tests.apps.run_scheduler`."""

from __future__ import annotations

import logging
import sys

from tests.apps.cron import app


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return app.scheduler(interval=0.5).run()


if __name__ == "__main__":
    sys.exit(main())
