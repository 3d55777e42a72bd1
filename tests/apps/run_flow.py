"""Run a worker or a scheduler of tests.apps.flow: `python -m tests.apps.run_flow`.

FLOW_ROLE is `worker` (WORKER_QUEUES, WORKER_CONCURRENCY, WORKER_LEASE, which also sets
how often it reports its drain rates: a third of it; thread executor) or `scheduler` (its
sweep every 0.2 s).
"""

from __future__ import annotations

import logging
import os
import sys

from tests.apps.flow import app


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    env = os.environ
    if env.get("FLOW_ROLE") == "scheduler":
        return app.scheduler(interval=0.2, sweep_interval=0.2).run()
    worker = app.worker(
        queues=env.get("WORKER_QUEUES", "default").split(","),
        concurrency=int(env.get("WORKER_CONCURRENCY", "4")),
        executor="thread",
        app_path="tests.apps.flow:app",
        poll_interval=0.5,
        lease=float(env.get("WORKER_LEASE", "20")),
    )
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
