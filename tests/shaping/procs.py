"""Bodies of the producer processes of the work-shaping races (importable, for "spawn").

Each producer opens its own App, waits on a shared barrier, then enqueues; it reports the
ids its committed enqueues returned and any error, and the parent test asserts on them.
"""

from __future__ import annotations

import json
import random
import sqlite3
import traceback
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import psycopg

import offload
from tests.conformance.helpers import is_sqlite, sqlite_path

#: The one unique key every producer of the race enqueues.
KEY = "reindex:all"


def _rolled_back(url: str, enqueue: Callable[[Any], offload.JobHandle[Any]]) -> None:
    """Enqueue in a caller's transaction on a connection of its own, then roll it back."""
    if is_sqlite(url):
        db = sqlite3.connect(sqlite_path(url), timeout=120)
        try:
            enqueue(db)
            db.rollback()
        finally:
            db.close()
    else:
        with psycopg.connect(url) as pg:
            enqueue(pg)
            pg.rollback()


def unique_producer(url: str, out: str, start: Barrier, calls: int, seed: int) -> None:
    """Enqueue `reindex` with one unique key `calls` times, 30% of them (drawn from
    `seed`) in a transaction that rolls back; report the ids of the committed ones."""
    committed: list[int] = []
    rolled_back = 0
    errors: list[str] = []
    app = offload.App(url)
    try:

        @app.task(name="reindex", unique=KEY)
        def reindex(n: int) -> None:
            return None

        app.backend.now()  # connected before the start line
        draw = random.Random(seed)
        start.wait(300)
        for n in range(calls):
            if draw.random() < 0.3:

                def inside(conn: Any, n: int = n) -> offload.JobHandle[None]:
                    return reindex.options(conn=conn).enqueue(n)

                _rolled_back(url, inside)
                rolled_back += 1
            else:
                committed.append(reindex.enqueue(n).id)
    except BaseException as exc:
        errors.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
    finally:
        app.close()
    report = {"committed": committed, "rolled_back": rolled_back, "errors": errors}
    Path(out).write_text(json.dumps(report))


def idempotent_producer(url: str, out: str, start: Barrier) -> None:
    """Enqueue `charge(42)` with one idempotency key once; report the id and the flag."""
    errors: list[str] = []
    found: dict[str, Any] = {}
    app = offload.App(url)
    try:

        @app.task(name="charge")
        def charge(order: int) -> None:
            return None

        app.backend.now()
        start.wait(300)
        handle = charge.options(idempotency_key="order-42").enqueue(42)
        found = {"id": handle.id, "duplicate": handle.duplicate}
    except BaseException as exc:
        errors.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
    finally:
        app.close()
    Path(out).write_text(json.dumps({**found, "errors": errors}))
