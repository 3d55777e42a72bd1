"""What the benchmarks read from /proc: process trees, memory, the CPU and the load.

Standard library only: imported by `throughput.py` and by the peer rig, in offload's venv and
in the peers' venv alike.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def ppids() -> dict[int, int]:
    """Every live process and its parent."""
    found: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(entry.path, "stat").read_text()
                found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def descendants(pid: int, parents: dict[int, int] | None = None) -> list[int]:
    """Every process below `pid` (children, grandchildren...)."""
    parents = ppids() if parents is None else parents
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User plus system CPU time so far of process `pid`, of the children it has reaped (a
    PostgreSQL postmaster reaps each backend that ended), and of its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for each in (pid, *descendants(pid)):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    return total


def kb(path: str, key: str) -> float:
    """A `Key: N kB` field of a /proc file (status, smaps_rollup, meminfo); 0 if absent."""
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    return 0.0


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def memory_gb() -> str:
    total = kb("/proc/meminfo", "MemTotal")
    return f"{total / 1024 / 1024:.1f} GB" if total else "?"


def load_average() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every figure."""
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


__all__ = ["cpu_model", "descendants", "kb", "load_average", "memory_gb", "ppids"]
