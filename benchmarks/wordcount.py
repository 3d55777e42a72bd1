"""The word count's functions, plain (no app): the map-reduce benchmark's loop in one
process calls these, and benchmarks.bench_app's tasks wrap them."""

from __future__ import annotations

from collections.abc import Iterable


def count_words(line: str) -> dict[str, int]:
    """How often each word occurs in one line."""
    counts: dict[str, int] = {}
    for word in line.split():
        counts[word] = counts.get(word, 0) + 1
    return counts


def merge_counts(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Word counts merged, consumed one part at a time."""
    totals: dict[str, int] = {}
    for part in parts:
        for word, n in part.items():
            totals[word] = totals.get(word, 0) + n
    return totals
