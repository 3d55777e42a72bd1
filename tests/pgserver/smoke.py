"""The self-check behind ``python -m tests.pgserver``."""

from __future__ import annotations

import time

import psycopg

from tests.pgserver.databases import fresh_database
from tests.pgserver.server import start_postgres


def main() -> int:
    """Start a server, print its URL and version, check fresh_database, stop."""
    started = time.monotonic()
    with start_postgres() as server:
        print(f"url: {server.url}")
        print(f"owned: {server.owned}  run_as: {server.run_as}  data_dir: {server.data_dir}")
        with psycopg.connect(server.url, autocommit=True) as conn:
            row = conn.execute("SELECT version()").fetchone()
        print(f"version: {row[0] if row else '?'}")
        db_url = fresh_database(server.url, "offload_pgserver_smoke")
        with psycopg.connect(db_url, autocommit=True) as conn:
            row = conn.execute("SELECT current_database()").fetchone()
        print(f"fresh_database: {db_url} -> {row[0] if row else '?'}")
    print(f"stopped; took {time.monotonic() - started:.1f}s")
    return 0
