"""Direct SQL for the benchmark's own checks, on a connection of its own (not offload's)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

from offload.backends.sqlite.backend import parse_sqlite_url


def is_sqlite(url: str) -> bool:
    """True for a sqlite:/// URL."""
    return url.startswith("sqlite:")


def epoch(url: str, column: str) -> str:
    """SQL for a time column as float epoch seconds (SQLite stores them that way already)."""
    return column if is_sqlite(url) else f"extract(epoch FROM {column})::float8"


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run one statement (no parameters) and return every row."""
    if is_sqlite(url):
        path, _ = parse_sqlite_url(url)
        with closing(sqlite3.connect(path)) as db:
            return [tuple(row) for row in db.execute(sql).fetchall()]
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return [tuple(row) for row in conn.execute(sql.encode()).fetchall()]
