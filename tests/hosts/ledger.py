"""The ledger: one row per run of a job, written by the task itself on its own connection,
with UNIQUE (job_id, attempt), so a claim handed out twice fails loudly; read back to prove
that no job was lost or doubled and that limits held on every host together.

Stamps come from the database's clock, the one clock every host shares.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

#: The host this process runs on ($HOSTS_NAME).
HOST = os.environ.get("HOSTS_NAME", "?")
SCHEMA = """
CREATE TABLE runs (
    job_id bigint NOT NULL,
    attempt int NOT NULL,
    host text NOT NULL,
    pid int NOT NULL,
    key text,
    started timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished timestamptz,
    UNIQUE (job_id, attempt)
)
"""
#: A cut link must fail a write within seconds, not after TCP's 15 minutes.
_LINK = conninfo_to_dict("connect_timeout=5 tcp_user_timeout=5000 keepalives_idle=2")
_local = threading.local()


def create(url: str) -> None:
    """Make the ledger's table in the (fresh) database of `url`."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)


def _conn() -> psycopg.Connection[tuple[object, ...]]:
    conn: psycopg.Connection[tuple[object, ...]] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(make_conninfo(os.environ["HOSTS_LEDGER"], **_LINK), autocommit=True)
        _local.conn = conn
    return conn


def _write(query: str, params: tuple[object, ...]) -> None:
    try:
        _conn().execute(query, params)
    except psycopg.OperationalError:
        _local.conn = None  # a broken link: the next run reconnects
        raise


def started(job_id: int, attempt: int, key: str | None = None) -> None:
    """Record that this attempt started here (a second start of it raises UniqueViolation)."""
    _write(
        "INSERT INTO runs (job_id, attempt, host, pid, key) VALUES (%s, %s, %s, %s, %s)",
        (job_id, attempt, HOST, os.getpid(), key),
    )


def finished(job_id: int, attempt: int) -> None:
    """Record that this attempt's task body ended."""
    _write(
        "UPDATE runs SET finished = clock_timestamp() WHERE job_id = %s AND attempt = %s",
        (job_id, attempt),
    )


@dataclass(frozen=True)
class Run:
    """One row of the ledger."""

    job_id: int
    attempt: int
    host: str
    key: str | None
    started: datetime
    finished: datetime | None


def runs(url: str) -> list[Run]:
    """Every run recorded, by job and attempt."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT job_id, attempt, host, key, started, finished FROM runs"
            " ORDER BY job_id, attempt"
        ).fetchall()
    return [Run(*row) for row in rows]


def attempts(recorded: list[Run]) -> dict[int, list[Run]]:
    """The runs of each job, first attempt first."""
    by_job: dict[int, list[Run]] = defaultdict(list)
    for run in recorded:
        by_job[run.job_id].append(run)
    return dict(by_job)


def most_at_once(recorded: list[Run]) -> dict[str, int]:
    """Per key, the most runs that were under way at the same instant."""
    edges: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for run in recorded:
        if run.key is not None:
            if run.finished is None:
                raise ValueError(f"run of job {run.job_id} with key {run.key!r} never finished")
            edges[run.key] += [(run.started, 1), (run.finished, -1)]
    peaks: dict[str, int] = {}
    for key, points in edges.items():
        now = peak = 0
        for _, step in sorted(points):  # an end sorts before a start at the same instant
            now += step
            peak = max(peak, now)
        peaks[key] = peak
    return peaks


def busiest_window(stamps: list[datetime], window: timedelta) -> int:
    """The most stamps in any half-open window of that length."""
    ordered = sorted(stamps)
    most = first = 0
    for last, stamp in enumerate(ordered):
        while ordered[first] <= stamp - window:
            first += 1
        most = max(most, last - first + 1)
    return most
