"""The database's own claim limit, with no offload code: `python -m tests.hosts.rawclaim URL
BATCH START [LEDGER_URL]` claims BATCH rows of a one-table queue at a time (FOR UPDATE SKIP
LOCKED) and marks them done, two transactions per batch as a worker's claim and outcome
write, until the queue is empty. It starts at the Unix time START, so that every loop of a
run starts together. With LEDGER_URL it also records each row as the tasks of
tests.hosts.app do (one INSERT per run): the ledger's own share of a drain.
"""

from __future__ import annotations

import sys
import time

import psycopg

SCHEMA = """
CREATE TABLE rawq (
    id bigint PRIMARY KEY,
    state text NOT NULL DEFAULT 'available',
    claimed_at timestamptz,
    done_at timestamptz
);
CREATE INDEX rawq_available ON rawq (id) WHERE state = 'available';
CREATE TABLE runs (job_id bigint NOT NULL, attempt int NOT NULL, UNIQUE (job_id, attempt));
"""
CLAIM = """
UPDATE rawq SET state = 'running', claimed_at = clock_timestamp()
WHERE id IN (SELECT id FROM rawq WHERE state = 'available' ORDER BY id LIMIT %s
             FOR UPDATE SKIP LOCKED)
RETURNING id
"""
FINISH = "UPDATE rawq SET state = 'done', done_at = clock_timestamp() WHERE id = ANY(%s)"
RECORD = "INSERT INTO runs (job_id, attempt) VALUES (%s, 1)"
#: Rows done, the first claim and the last finish, by the database's clock.
RESULT = """
SELECT count(*), extract(epoch FROM max(done_at) - min(claimed_at))
FROM rawq WHERE state = 'done'
"""


def fill(url: str, rows: int) -> None:
    """(Re)make the queue with `rows` available rows, and an empty ledger beside it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS rawq, runs")
        conn.execute(SCHEMA)
        conn.execute("INSERT INTO rawq (id) SELECT generate_series(1, %s)", (rows,))
        conn.execute("VACUUM ANALYZE rawq")


def result(url: str) -> tuple[int, float]:
    """Rows done, and seconds from the first claim to the last finish."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(RESULT).fetchone()
    assert row is not None
    return int(row[0]), float(row[1] or 0.0)


def drain(url: str, batch: int, start: float, ledger: str | None) -> int:
    """Claim and finish until the queue is empty; the rows this loop did."""
    done = 0
    with psycopg.connect(url) as conn:
        record = psycopg.connect(ledger, autocommit=True) if ledger else None
        time.sleep(max(0.0, start - time.time()))
        while True:
            with conn.transaction():
                ids = [row[0] for row in conn.execute(CLAIM, (batch,)).fetchall()]
            if not ids:
                break
            if record is not None:
                for job_id in ids:
                    record.execute(RECORD, (job_id,))
            with conn.transaction():
                conn.execute(FINISH, (ids,))
            done += len(ids)
        if record is not None:
            record.close()
    return done


if __name__ == "__main__":
    args = sys.argv[1:]
    print(drain(args[0], int(args[1]), float(args[2]), args[3] if len(args) > 3 else None))
