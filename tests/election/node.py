"""One candidate of the election tests, as a process: `python -m tests.election.node URL
LOG LEASE`. It stands for the rescue duty until killed, and writes to LOG, one JSON line
each, every check of the lease (`check`: held or not, the term, the lease's times by the
database's clock) and, every few milliseconds while it believes itself the holder, a
`lead` line: its term, and a monotonic time at which it believed so (before the check that
said so, so never after it). CLOCK_MONOTONIC is the machine's: the test compares the
lines of every process on one time line. Nothing is asserted here.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import IO

import offload
from offload.runtime.leader import RESCUE, Elector, Held

#: Seconds between two looks at the lease, as a worker's loop turns.
TURN = 0.01


def main(url: str, log_path: str, lease: float) -> None:
    app = offload.App(url)
    with open(log_path, "a", buffering=1) as out:

        def observe(held: Held) -> None:
            write(
                out,
                "check",
                held.lease.term,
                held.sent,
                held=held.held,
                since=held.lease.since.timestamp(),
                expires=held.lease.expires_at.timestamp(),
            )

        elector = Elector(app.backend, RESCUE, f"node:{os.getpid()}", lease, observer=observe)
        while True:
            if time.monotonic() >= elector.due:
                elector.poll()
            before = time.monotonic()
            if elector.leading():
                write(out, "lead", elector.term, before, until=elector.until)
            time.sleep(TURN)


def write(out: IO[str], kind: str, term: int | None, at: float, **more: object) -> None:
    out.write(json.dumps({"kind": kind, "pid": os.getpid(), "term": term, "at": at, **more}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
