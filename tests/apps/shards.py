"""Tasks for the shard tests: an App over two PostgreSQL clusters, their URLs from
$OFFLOAD_SHARD_ONE and $OFFLOAD_SHARD_TWO, queue "reports" on shard two, the others on one.

`record` writes its job id into `shard_runs` (a primary key) on $OFFLOAD_SHARD_RESULTS; a
second run of the same job lands in `shard_doubles` instead, so a test counts lost and
doubled jobs in the database, whatever process ran them.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import offload

ONE = os.environ.get("OFFLOAD_SHARD_ONE", "postgresql://localhost/unset_one")
TWO = os.environ.get("OFFLOAD_SHARD_TWO", "postgresql://localhost/unset_two")
RESULTS = os.environ.get("OFFLOAD_SHARD_RESULTS", ONE)

app = offload.App(shards={"one": ONE, "two": TWO}, shard_map={"two": ["reports"]})
_local = threading.local()

RESULTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS shard_runs (job_id bigint PRIMARY KEY, pid integer NOT NULL);
CREATE TABLE IF NOT EXISTS shard_doubles (job_id bigint NOT NULL, pid integer NOT NULL)
"""
RECORD = """
WITH ran AS (
    INSERT INTO shard_runs (job_id, pid) VALUES (%(id)s, %(pid)s)
    ON CONFLICT DO NOTHING RETURNING job_id
)
INSERT INTO shard_doubles (job_id, pid) SELECT %(id)s, %(pid)s WHERE NOT EXISTS (SELECT 1 FROM ran)
"""


def _results() -> Any:
    import psycopg

    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(RESULTS, autocommit=True)
    return conn


@app.task(name="record", queue="moving")
def record(n: int) -> int:
    job = offload.current_job()
    _results().execute(RECORD, {"id": job.id, "pid": os.getpid()})
    return n


@app.task(name="report", queue="reports")
def report(n: int) -> int:
    return n * 2


@app.task(name="plain")
def plain(n: int) -> int:
    return n + 1
