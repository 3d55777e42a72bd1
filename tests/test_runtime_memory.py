"""The worker's allocator setting: freed heap is kept for reuse where glibc allows it."""

from __future__ import annotations

import platform

from offload.runtime.memory import keep_freed_memory


def test_keep_freed_memory_takes_effect_on_glibc() -> None:
    assert keep_freed_memory() is (platform.libc_ver()[0] == "glibc")
