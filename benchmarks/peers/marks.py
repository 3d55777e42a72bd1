"""Where a job records that it started: one fixed-width line per job in a per-process file.

Every system's task body is `marks.record(seq)`: it appends `<seq> <time.time()>` (32 bytes)
to `$PEERS_MARKS/<pid>.marks`. The file is opened once per process (again after a fork), so
a record costs one `write(2)` of 32 bytes, a few microseconds. Because every line has the
same length, the benchmark counts finished jobs from the files' sizes alone (`count`), and
reads the lines (`read`) only at the end: the start time of each job, on the host's clock,
which the producer's enqueue stamps (`time.time()` too) are compared with.

Standard library only: it is imported in offload's venv and in the peers' venv.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

LINE = 32  # bytes per record: 12-digit seq, space, 18-char epoch seconds, newline
ENV = "PEERS_MARKS"

_fd = -1
_pid = -1


def record(seq: int) -> None:
    """Append this job's sequence number and start time to this process's file."""
    global _fd, _pid
    pid = os.getpid()
    if pid != _pid:  # first job in this process, or a forked child that inherited _fd
        path = os.path.join(os.environ[ENV], f"{pid}.marks")
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _pid = pid
    os.write(_fd, b"%12d %18.6f\n" % (seq, time.time()))


def count(directory: Path) -> int:
    """Jobs recorded so far in `directory` (from the files' sizes: no reading)."""
    total = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.endswith(".marks"):
                total += entry.stat().st_size
    return total // LINE


def read(directory: Path) -> list[tuple[int, float]]:
    """Every (seq, start time) recorded in `directory`, in no particular order."""
    found: list[tuple[int, float]] = []
    for path in directory.glob("*.marks"):
        data = path.read_bytes()
        for i in range(0, len(data) - LINE + 1, LINE):
            seq, stamp = data[i : i + LINE].split()
            found.append((int(seq), float(stamp)))
    return found
