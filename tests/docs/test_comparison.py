"""The comparison page quotes benchmarks/RESULTS.md: each of its table rows and each
benchmark command on it is in that file, word for word, so the page cannot drift from the
record (a new run means quoting it anew)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "comparison.md"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def test_every_table_row_is_quoted_from_results() -> None:
    record = set(RESULTS.read_text().splitlines())
    rows = [line for line in PAGE.read_text().splitlines() if line.startswith("|")]
    assert len(rows) > 20
    missing = [row for row in rows if row not in record]
    assert not missing, "rows not found in benchmarks/RESULTS.md"


def test_every_command_is_quoted_from_results() -> None:
    record = RESULTS.read_text()
    commands = re.findall(r"`(\.venv/bin/python -m benchmarks[^`]*)`", PAGE.read_text())
    assert len(commands) >= 3
    for command in commands:
        assert command in record, command
