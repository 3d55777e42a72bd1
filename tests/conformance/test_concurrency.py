"""Claims are atomic across processes; SQLite survives heavy write contention
(DESIGN.md sections 1-3, RELIABILITY test 14)."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from pathlib import Path

from offload.backends import open_backend
from offload.backends.base import Backend
from tests.conformance import procs
from tests.conformance.helpers import RawDB, insert_jobs, new_job

CLAIMERS = 8
JOBS = 5_000


def test_eight_processes_claim_every_job_exactly_once(
    backend: Backend, db_url: str, tmp_path: Path
) -> None:
    ids = insert_jobs(backend, [new_job(args=[i]) for i in range(JOBS)])
    assert len(ids) == JOBS
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(CLAIMERS)
    outs = [tmp_path / f"claimer{i}.json" for i in range(CLAIMERS)]
    began = time.monotonic()
    processes = procs.start_all(
        [
            (procs.claimer, (db_url, f"claimer-{i}", str(outs[i]), start, 10))
            for i in range(CLAIMERS)
        ]
    )
    codes = procs.join_all(processes, timeout=120)
    elapsed = time.monotonic() - began
    reports = procs.read_reports(outs)
    assert codes == [0] * CLAIMERS
    for i, report in enumerate(reports):
        assert report["errors"] == [], f"claimer {i}: {report['errors']}"

    claims = [
        (job_id, attempt, worker) for r in reports for job_id, attempt, worker in r["claimed"]
    ]
    counts = Counter(job_id for job_id, _, _ in claims)
    duplicates = {job_id: n for job_id, n in counts.items() if n > 1}
    assert duplicates == {}, f"{len(duplicates)} jobs claimed more than once"
    assert set(counts) == set(ids)
    assert len(claims) == JOBS
    assert {attempt for _, attempt, _ in claims} == {1}
    busy = [len(r["claimed"]) for r in reports]
    assert sum(1 for n in busy if n) >= 2, f"claims were not concurrent: {busy}"

    owner = {job_id: worker for job_id, _, worker in claims}
    rows = RawDB(db_url).query("SELECT id, state, attempt, worker, result FROM offload_jobs")
    assert len(rows) == JOBS
    for row in rows:
        assert row["state"] == "succeeded", row
        assert row["attempt"] == 1, row
        assert row["worker"] == owner[row["id"]], row
    print(f"{backend.name}: {JOBS} jobs by {CLAIMERS} processes in {elapsed:.1f}s, {busy}")


def test_sqlite_contention_producers_and_claimers(sqlite_url: str, tmp_path: Path) -> None:
    """RELIABILITY 14 (SQLite only): 8 producers + 8 claimers on one file, 20,000 jobs.

    Pass: no error reaches any caller ("database is locked" or any other), every job
    succeeded exactly once, and every write transaction of every process (traced with
    `set_trace_callback`) opened with BEGIN IMMEDIATE.
    """
    producers, claimers, total = 8, 8, 20_000
    per_producer = total // producers
    setup = open_backend(sqlite_url)
    setup.schema.migrate()
    setup.close()

    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(producers + claimers)
    done = ctx.Event()
    producer_outs = [tmp_path / f"producer{i}.json" for i in range(producers)]
    claimer_outs = [tmp_path / f"claimer{i}.json" for i in range(claimers)]
    patterns = [[1, 5, 1, 20, 2, 1, 10], [10, 1, 1, 3, 25], [1], [50, 1, 7]]
    began = time.monotonic()
    claimer_procs = procs.start_all(
        [
            (
                procs.claimer,
                (sqlite_url, f"c{i}", str(claimer_outs[i]), start, 20, "default", done, True),
            )
            for i in range(claimers)
        ]
    )
    producer_procs = procs.start_all(
        [
            (
                procs.producer,
                (
                    sqlite_url,
                    i,
                    per_producer,
                    str(producer_outs[i]),
                    start,
                    patterns[i % len(patterns)],
                    True,
                ),
            )
            for i in range(producers)
        ]
    )
    producer_codes = procs.join_all(producer_procs, timeout=120)
    produced_at = time.monotonic() - began
    done.set()
    claimer_codes = procs.join_all(claimer_procs, timeout=60)
    elapsed = time.monotonic() - began

    produced = procs.read_reports(producer_outs)
    consumed = procs.read_reports(claimer_outs)
    assert producer_codes == [0] * producers
    assert claimer_codes == [0] * claimers
    for name, report in [*(("producer", r) for r in produced), *(("claimer", r) for r in consumed)]:
        assert report["errors"] == [], f"{name}: {report['errors']}"

    acked = [job_id for r in produced for job_id in r["ids"]]
    assert len(acked) == total
    assert len(set(acked)) == total
    claims = [job_id for r in consumed for job_id, _, _ in r["claimed"]]
    counts = Counter(claims)
    assert {job_id for job_id, n in counts.items() if n > 1} == set()
    assert set(claims) == set(acked)

    raw = RawDB(sqlite_url)
    states = raw.query("SELECT state, attempt, count(*) AS n FROM offload_jobs GROUP BY 1, 2")
    assert states == [{"state": "succeeded", "attempt": 1, "n": total}]
    per_producer_rows = raw.query(
        "SELECT json_extract(args, '$[0]') AS p, count(DISTINCT json_extract(args, '$[1]')) AS n "
        "FROM offload_jobs GROUP BY 1 ORDER BY 1"
    )
    assert per_producer_rows == [{"p": i, "n": per_producer} for i in range(producers)]

    # Every write transaction of every process began with BEGIN IMMEDIATE.
    for name, report in [*(("producer", r) for r in produced), *(("claimer", r) for r in consumed)]:
        trace = report["trace"]
        assert trace["violations"] == [], f"{name}: {trace['violations']}"
        assert trace["begin_immediate"] > 0
        assert trace["writes"] >= trace["begin_immediate"]
    for report in produced:  # one transaction per enqueue call, no more, no less
        assert report["trace"]["begin_immediate"] == report["calls"]
    print(
        f"sqlite contention: {total} jobs, produced in {produced_at:.1f}s, done in {elapsed:.1f}s"
    )


def test_tx_trace_flags_deferred_transactions_and_bare_writes() -> None:
    """The checker used above does catch what it looks for."""
    trace = procs.TxTrace()
    for sql in (
        "BEGIN IMMEDIATE",
        "-- comment\nUPDATE offload_jobs SET state = 'running' RETURNING id",
        "COMMIT",
        "SELECT 1",
        "BEGIN",
        "INSERT INTO t VALUES (1)",
        "COMMIT",
        "BEGIN DEFERRED",
        "ROLLBACK",
        "DELETE FROM t",
    ):
        trace(sql)
    report = trace.report()
    assert report["begin_immediate"] == 1
    assert len(report["violations"]) == 3
    assert "BEGIN IMMEDIATE" in report["violations"][0]
    assert "outside" in report["violations"][2]
