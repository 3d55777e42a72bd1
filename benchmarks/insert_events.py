"""PostgreSQL: an enqueue's `enqueued` events written by the insert trigger (schema 9) or by
a data-modifying WITH in the insert statement itself, as the claims write theirs (schema 21).

One process, one throwaway server and database; the two ways take turns each round: the
trigger as shipped, then the trigger disabled and `insert_one` / `insert_many` rewritten
with a WITH that writes the same rows and the same NOTIFY. Per job: the server backend's CPU
(its /proc stat: the connection's own process), the WAL bytes, and the wall time; medians
of the rounds and of the per-round ratios. A measurement only: offload keeps one of them.

    .venv/bin/python benchmarks/insert_events.py [--rounds 7] [--jobs 2000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.pgserver import start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402

#: The insert's RETURNING and the events written from it (psycopg's placeholders: the
#: statements are rewritten after loading).
_ONE_TAIL = "RETURNING id)\nSELECT id, "
_MANY_TAIL = "RETURNING id)\nSELECT id FROM ins,\n    (SELECT "
_EVENTS = (
    "RETURNING id, task, queue, channel, state, attempt),\n"
    "told AS (\n"
    "    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)\n"
    "    SELECT 'enqueued', id, task, queue, channel, state, attempt, '{}' FROM ins ORDER BY id)\n"
)
_NOTIFY = "CASE WHEN NOT %(defer)s::boolean THEN pg_notify('offload_events', '') END, "


def _rewritten(text: dict[str, str]) -> dict[str, str]:
    """`insert_one` and `insert_many` writing their events in a WITH, NOTIFYing with them."""
    one, many = text["insert_one"], text["insert_many"]
    assert one.count(_ONE_TAIL) == 1 and many.count(_MANY_TAIL) == 1, "jobs.sql changed"
    many_tail = _EVENTS + "SELECT id FROM ins,\n    (SELECT " + _NOTIFY
    return {
        "insert_one": one.replace(_ONE_TAIL, _EVENTS + "SELECT id, " + _NOTIFY),
        "insert_many": many.replace(_MANY_TAIL, many_tail),
    }


def _cpu(pid: int) -> float:
    """User plus system CPU seconds of process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, rounds: int, jobs: int, batch: int) -> None:
    import offload

    app = offload.App(url)
    app.migrate()

    @app.task(name="noop")
    def noop(n: int) -> None:
        """Only enqueued."""

    backend: Any = app.backend
    queries = backend.q["jobs"].text
    shipped = {name: queries[name] for name in ("insert_one", "insert_many")}
    rewritten = _rewritten(queries)
    with backend.read() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = int(cur.fetchone()[0])

    def use(way: str) -> None:
        queries.update(shipped if way == "trigger" else rewritten)
        switch = "ENABLE" if way == "trigger" else "DISABLE"
        with backend.tx() as cur:
            cur.execute(f"ALTER TABLE offload_jobs {switch} TRIGGER offload_jobs_events_insert")

    def run(n: int, size: int) -> tuple[float, float, float]:
        with backend.read() as cur:
            cur.execute("SELECT pg_current_wal_lsn()::text, pg_backend_pid()")
            lsn, same = cur.fetchone()
        assert same == pid, "the enqueues ran on another connection"
        cpu, wall = _cpu(pid), time.perf_counter()
        if size == 1:
            for i in range(n):
                noop.enqueue(i)
        else:
            for start in range(0, n, size):
                noop.enqueue_many([(i,) for i in range(start, start + size)])
        wall = time.perf_counter() - wall
        cpu = _cpu(pid) - cpu
        with backend.read() as cur:
            cur.execute("SELECT pg_current_wal_lsn() - %s::pg_lsn", (lsn,))
            wal = float(cur.fetchone()[0])
        return cpu / n * 1e6, wal / n, wall / n * 1e6

    for label, n, size in (("lone enqueue", jobs, 1), (f"batch of {batch}", jobs * 10, batch)):
        figures: dict[str, list[tuple[float, float, float]]] = {"trigger": [], "with": []}
        for way in figures:  # warm both
            use(way)
            run(max(n // 10, size), size)
        for _ in range(rounds):
            for way, got in figures.items():
                use(way)
                got.append(run(n, size))
        print(f"{label} ({n} jobs a round, {rounds} rounds), per job:")
        print("| way | server CPU us | WAL bytes | wall us |")
        print("|---|---:|---:|---:|")
        for way, got in figures.items():
            cells = " | ".join(f"{statistics.median(x[k] for x in got):.1f}" for k in range(3))
            print(f"| {way} | {cells} |")
        pairs = list(zip(figures["trigger"], figures["with"], strict=True))
        ratios = " | ".join(
            f"{statistics.median(w[k] / t[k] for t, w in pairs):.3f}" for k in range(3)
        )
        print(f"| with / trigger (median of rounds) | {ratios} |")
        with backend.read() as cur:
            cur.execute("SELECT count(*) = (SELECT count(*) FROM offload_jobs) FROM offload_events")
            assert cur.fetchone()[0], "an enqueue without its event"
    app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    server = start_postgres()
    try:
        url = fresh_database(server.url, f"offload_insert_events_{os.getpid()}")
        measure(url, args.rounds, args.jobs, args.batch)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
