"""A task's CPU and memory limits, applied in the child around one run, and a child's size.

Both read Linux's /proc: the limits set RLIMIT_CPU and RLIMIT_AS relative to what the child
already uses, and the worker replaces a child whose resident memory grew past its cap.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
from collections.abc import Iterator

from offload.core.options import TaskOptions

MIB = 1024 * 1024


@contextlib.contextmanager
def applied(options: TaskOptions | None) -> Iterator[None]:
    """Apply a task's CPU and memory limits to this process for one run, then lift them."""
    if options is None or not options.has_process_limits:
        yield
        return
    saved = []
    if options.cpu_seconds is not None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = usage.ru_utime + usage.ru_stime
        saved.append((resource.RLIMIT_CPU, resource.getrlimit(resource.RLIMIT_CPU)))
        soft = math.ceil(used + options.cpu_seconds)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
    if options.memory_mb is not None:
        saved.append((resource.RLIMIT_AS, resource.getrlimit(resource.RLIMIT_AS)))
        soft = _address_space() + int(options.memory_mb * MIB)
        resource.setrlimit(resource.RLIMIT_AS, (soft, resource.RLIM_INFINITY))
    try:
        yield
    finally:
        for kind, previous in saved:
            resource.setrlimit(kind, previous)


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, IndexError, ValueError):
        return 0.0


def _address_space() -> int:
    """This process's virtual memory size in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
