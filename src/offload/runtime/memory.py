"""Process-wide memory settings for offload's own long-running processes.

Called by the `offload worker` command only: a Worker embedded in another program leaves
that program's allocator alone.
"""

from __future__ import annotations

import ctypes

#: glibc's mallopt parameters: free memory at the top of the heap above the first is
#: returned to the kernel; blocks from the second up are mapped and unmapped on their own.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: What a worker keeps instead of returning: far above its per-transaction churn.
TRIM_THRESHOLD = 16 * 1024 * 1024
#: Setting the trim threshold turns glibc's adaptive mmap threshold off; this fixes it
#: instead, so that large results and outcome batches come from the kept heap too.
MMAP_THRESHOLD = 4 * 1024 * 1024


def keep_freed_memory(threshold: int = TRIM_THRESHOLD) -> bool:
    """Ask the C allocator to keep up to `threshold` bytes of freed heap for reuse.

    SQLite drops a connection's page cache whenever another process commits, and glibc hands
    the freed pages back to the kernel at once; each claim then faults them in again, which
    measured about 0.3 ms per claim after an idle moment. The setting is process-wide (a
    worker embedded in another program changes that program's allocator too). Returns False
    where the C library has no `mallopt` (not glibc): nothing changes there.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, threshold)) and bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    )


__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]
