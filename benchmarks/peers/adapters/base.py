"""The interface every system's adapter implements, and the worker-process plumbing they share.

An adapter module (`benchmarks/peers/adapters/<system>.py`) builds its system's objects at
import time from `$PEERS_URL` (the fresh database, Redis or SQLite file of this run, made by
the harness before the import), so that the system's own worker CLI can import the same
module and find the same task. Its `Adapter` class then offers:

* `setup()` / `teardown()`: schema, connections (the storage itself is already fresh);
* `enqueue_one(seq)`: one job, one call, acknowledged when it returns;
* `enqueue_batch(seqs)`: many jobs in one call, only where `batch_api` names the system's API;
* `worker_commands(n_processes)`: the system's own worker command line(s) for the closest
  equivalent of "a worker with 2 processes" (`start_workers` runs them);
* `queued()`: jobs waiting, to check an enqueue run stored every job;
* `attach()`: in a producer process of its own (`enqueue_procs`), connect to the storage
  another process's `setup()` prepared; systems without it say n/a to that workload.

Any of these may be `async def` (arq, procrastinate, pgqueuer); the harness awaits them.
The task body is always `marks.record(seq)`: that is the latency probe and the drain counter.
Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.procinfo import descendants, kb

ROOT = Path(__file__).resolve().parents[3]  # the repository


class Adapter:
    """One system under test (see the module docstring). Subclasses override what they have."""

    #: How its jobs are run, as shown in the table notes.
    worker_note = ""
    #: The batch API used by enqueue_batch ("" when the system has none).
    batch_api = ""
    #: Distributions whose versions are printed above the table.
    packages: tuple[str, ...] = ()

    def __init__(self, variant: str, url: str, workdir: Path) -> None:
        self.variant = variant
        self.url = url
        self.workdir = workdir
        self.workers: list[subprocess.Popen[bytes]] = []

    # -- the interface ---------------------------------------------------------------------

    def setup(self) -> Any:
        """Prepare the fresh storage (schema, connections)."""
        return None

    def teardown(self) -> Any:
        """Close what setup opened (the harness drops the storage afterwards)."""
        return None

    def enqueue_one(self, seq: int) -> Any:
        """Enqueue one job `mark(seq)`; return when the system acknowledges it."""
        raise NotImplementedError

    def enqueue_batch(self, seqs: Sequence[int]) -> Any:
        """Enqueue `mark(seq)` for every seq in one call of the system's batch API."""
        raise NotImplementedError

    def worker_commands(self, n_processes: int) -> list[list[str]]:
        """Command lines that together make a worker with `n_processes` job processes."""
        raise NotImplementedError

    def attach(self) -> Any:
        """Connect to storage that another process's setup() prepared (a producer process)."""
        raise NotImplementedError

    def queued(self) -> Any:
        """Jobs waiting to run (int), or None if the system cannot tell cheaply."""
        return None

    def settings(self) -> dict[str, str]:
        """Settings of this system worth printing (effective durability, polling)."""
        return {}

    # -- shared plumbing --------------------------------------------------------------------

    def versions(self) -> dict[str, str]:
        found = {}
        for name in self.packages:
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                found[name] = "not installed"
        return found

    def start_workers(self, n_processes: int = 2) -> list[int]:
        """Start the worker command(s) in this process group; return their pids."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        for i, cmd in enumerate(self.worker_commands(n_processes)):
            log = (self.workdir / f"worker{len(self.workers)}-{i}.log").open("ab")
            self.workers.append(
                subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
        return [p.pid for p in self.workers]

    def workers_alive(self) -> bool:
        return all(p.poll() is None for p in self.workers)

    def worker_log_tail(self, lines: int = 12) -> str:
        text = []
        for path in sorted(self.workdir.glob("worker*.log")):
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                text.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(text)

    def stop_workers(self, grace: float = 10.0) -> None:
        """SIGTERM the workers (graceful stop), then SIGKILL whatever of them is left."""
        family = [p for w in self.workers for p in descendants(w.pid)]
        for w in self.workers:
            with contextlib.suppress(ProcessLookupError):
                w.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for w in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.wait(max(deadline - time.monotonic(), 0.01))
        for pid in [w.pid for w in self.workers if w.poll() is None] + family:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for w in self.workers:
            w.wait()
        self.workers = []


def python(*args: str) -> list[str]:
    """A command line running this interpreter (the system's own venv) with `args`."""
    return [sys.executable, *args]


# -- /proc helpers: process trees and their memory ---------------------------------------


def memory(pids: Sequence[int]) -> dict[str, float]:
    """MB: RSS of the first worker process (the one a user starts), and the PSS summed over
    every worker process and all their descendants (shared pages counted once)."""
    tree = list(pids) + [d for p in pids for d in descendants(p)]
    return {
        "main_rss": kb(f"/proc/{pids[0]}/status", "VmRSS") / 1024 if pids else 0.0,
        "tree_pss": sum(kb(f"/proc/{p}/smaps_rollup", "Pss") for p in tree) / 1024,
        "processes": float(len(tree)),
    }
