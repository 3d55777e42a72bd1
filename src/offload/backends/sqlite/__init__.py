"""The SQLite backend: one file, WAL, `BEGIN IMMEDIATE` writes, socket wake-ups."""

from offload.backends.sqlite.backend import SQLiteBackend

__all__ = ["SQLiteBackend"]
