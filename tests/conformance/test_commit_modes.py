"""Which commits wait for the disk: every enqueue does; a worker's bookkeeping need not.

A claim, an outcome or a lease renewal lost in a power failure only makes a job run again
(DESIGN §1 at-least-once, §4 batching), so those commits skip the flush; an acknowledged
enqueue must survive, so its commit always waits, even on a connection that just did
bookkeeping.
"""

from __future__ import annotations

from typing import Any

import psycopg

from offload.backends import open_backend
from offload.backends.base import Backend
from offload.backends.params import ClaimParams
from tests.conformance.helpers import insert


def _mode(backend: Any, *, relaxed: bool) -> str:
    """The commit mode a transaction of this kind runs with, as the database reports it."""
    with backend.tx(relaxed=relaxed) as cur:
        if backend.name == "sqlite":
            cur.execute("PRAGMA synchronous")
            return {1: "normal", 2: "full", 3: "extra"}[cur.fetchone()[0]]
        cur.execute("SHOW synchronous_commit")
        return str(cur.fetchone()[0])


def test_bookkeeping_skips_the_flush_and_enqueues_keep_it(db_url: str) -> None:
    if db_url.startswith("postgresql"):
        # The test server defaults to synchronous_commit=off; make this database durable
        # so that a durable commit and a relaxed one can be told apart.
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("ALTER DATABASE " + conn.info.dbname + " SET synchronous_commit = on")
    backend: Backend = open_backend(db_url)
    backend.schema.migrate()
    try:
        _check_modes(backend)
    finally:
        backend.close()


def _check_modes(backend: Backend) -> None:
    durable, relaxed = ("full", "normal") if backend.name == "sqlite" else ("on", "off")
    assert _mode(backend, relaxed=True) == relaxed
    # The same backend (for SQLite the same connection) goes back to durable commits.
    assert _mode(backend, relaxed=False) == durable
    insert(backend, 2)
    assert backend.claims.claim(ClaimParams("w", "default", 1, 30.0))
    assert _mode(backend, relaxed=False) == durable
    assert _mode(backend, relaxed=True) == relaxed
    assert _mode(backend, relaxed=False) == durable


def test_bookkeeping_sessions_keep_the_urls_own_options(pg_url: str) -> None:
    """The relaxed sessions add synchronous_commit=off to the URL's options, not instead."""
    url = pg_url + ("&" if "?" in pg_url else "?") + "options=-c%20statement_timeout%3D12345"
    backend: Any = open_backend(url)
    try:
        for relaxed in (False, True):
            with backend.tx(relaxed=relaxed) as cur:
                cur.execute("SHOW statement_timeout")
                assert cur.fetchone()[0] == "12345ms", relaxed
    finally:
        backend.close()
