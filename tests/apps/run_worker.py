"""Run one worker of tests.apps.basic in this process: `python -m tests.apps.run_worker`.

Options come from the environment so tests can start many workers with one helper:
OFFLOAD_URL, WORKER_QUEUES, WORKER_CONCURRENCY, WORKER_EXECUTOR, WORKER_LEASE,
WORKER_RESCUE, WORKER_SHUTDOWN_TIMEOUT, WORKER_BURST, WORKER_POLL, WORKER_CONNECTIONS;
WORKER_APP names another app ("tests.apps.topics:app"), WORKER_GROUPS the consumer
groups served (default: all the app declares).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import offload


def main() -> int:
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(threadName)s %(levelname)s %(name)s: %(message)s",
    )
    env = os.environ
    app_path = env.get("WORKER_APP", "tests.apps.basic:app")
    module, _, name = app_path.partition(":")
    app: offload.App = getattr(importlib.import_module(module), name)
    groups = env["WORKER_GROUPS"].split(",") if "WORKER_GROUPS" in env else None
    worker = app.worker(
        queues=env.get("WORKER_QUEUES", "default").split(","),
        concurrency=int(env.get("WORKER_CONCURRENCY", "2")),
        executor=env.get("WORKER_EXECUTOR", "process"),
        prefetch=int(env["WORKER_PREFETCH"]) if "WORKER_PREFETCH" in env else None,
        max_jobs_per_child=int(env["WORKER_MAX_JOBS"]) if "WORKER_MAX_JOBS" in env else None,
        max_child_memory_mb=float(env["WORKER_MAX_CHILD_MEMORY"])
        if "WORKER_MAX_CHILD_MEMORY" in env
        else None,
        app_path=app_path,
        groups=groups,
        lease=float(env.get("WORKER_LEASE", "30")),
        rescue_interval=float(env.get("WORKER_RESCUE", "1")),
        poll_interval=float(env.get("WORKER_POLL", "0.5")),
        shutdown_timeout=float(env.get("WORKER_SHUTDOWN_TIMEOUT", "30")),
        burst=env.get("WORKER_BURST") == "1",
        connections=int(env.get("WORKER_CONNECTIONS", "2")),
    )
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
