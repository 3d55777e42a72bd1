"""Sizes of the long tests: a CI size by default, the full size with OFFLOAD_TEST_FULL=1.

A soak, torture or race test proves its behaviour at the CI size too (the same assertions
over fewer jobs, kills, rounds or seconds), so the suite stays within its time budget; the
full size hunts for rarer interleavings and runs the same code for longer:

    OFFLOAD_TEST_FULL=1 scripts/test tests/runtime/test_torture.py   # one test, full size
    OFFLOAD_TEST_FULL=1 scripts/test                                 # everything, full size

Each such test names both of its sizes where it calls `sized`.
"""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")

ENV = "OFFLOAD_TEST_FULL"


class BadSizeSetting(ValueError):
    """OFFLOAD_TEST_FULL holds something other than 0 or 1."""

    def __init__(self, value: str) -> None:
        super().__init__(f"{ENV} must be 0 or 1 (or unset), not {value!r}")
        self.value = value


def _full() -> bool:
    value = os.environ.get(ENV, "").strip()
    if value not in ("", "0", "1"):
        raise BadSizeSetting(value)
    return value == "1"


#: True when the long tests run at their full size.
FULL = _full()


def sized(ci: T, full: T) -> T:
    """`full` when OFFLOAD_TEST_FULL=1, else `ci`."""
    return full if FULL else ci
