"""Unique and idempotency keys under racing producer processes (RELIABILITY 27).

Producers in processes of their own enqueue one unique key, 30% of the time inside a
transaction that rolls back: exactly one job holds the key, and every committed enqueue
was answered with it (never zero jobs, never two). The CI size is 12 producers and 240
enqueues; `OFFLOAD_SHAPING_RACE=full` runs RELIABILITY 27's size, 50 producers and 1,000
enqueues, on both backends.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import offload
from tests.conformance import procs
from tests.conformance.helpers import RawDB
from tests.shaping import procs as shaping

#: (producers, enqueues in all) by size.
SIZES = {"ci": (12, 240), "full": (50, 1_000)}


def test_racing_producers_of_one_unique_key_store_exactly_one_job(
    db_url: str, tmp_path: Path
) -> None:
    producers, total = SIZES[os.environ.get("OFFLOAD_SHAPING_RACE", "ci")]
    offload.App(db_url).migrate()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(producers + 1)
    outs = [tmp_path / f"producer{i}.json" for i in range(producers)]
    per = total // producers
    processes = procs.start_all(
        [(shaping.unique_producer, (db_url, str(out), start, per, i)) for i, out in enumerate(outs)]
    )
    start.wait(300)
    codes = procs.join_all(processes, timeout=600)
    reports = procs.read_reports(outs)
    assert codes == [0] * producers
    for i, report in enumerate(reports):
        assert report["errors"] == [], f"producer {i}: {report['errors']}"
    committed = [job_id for report in reports for job_id in report["committed"]]
    rolled_back = sum(report["rolled_back"] for report in reports)
    assert len(committed) + rolled_back == per * producers
    assert committed and rolled_back, "the race needs both kinds of enqueue"
    rows = RawDB(db_url).query("SELECT id, unique_key FROM offload_jobs")
    assert len(rows) == 1, f"{len(rows)} jobs stored for one unique key"
    assert rows[0]["unique_key"] == shaping.KEY
    assert set(committed) == {rows[0]["id"]}, "a committed enqueue got another job"
    print(
        f"{producers} producers, {len(committed)} committed and {rolled_back} rolled-back "
        f"enqueues: 1 job"
    )


def test_eight_processes_with_one_idempotency_key_get_one_job(db_url: str, tmp_path: Path) -> None:
    offload.App(db_url).migrate()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(9)
    outs = [tmp_path / f"producer{i}.json" for i in range(8)]
    processes = procs.start_all(
        [(shaping.idempotent_producer, (db_url, str(o), start)) for o in outs]
    )
    start.wait(300)
    assert procs.join_all(processes, timeout=300) == [0] * 8
    reports = procs.read_reports(outs)
    assert [r["errors"] for r in reports] == [[]] * 8
    assert len({r["id"] for r in reports}) == 1
    assert sorted(r["duplicate"] for r in reports) == [False] + [True] * 7
    assert RawDB(db_url).scalar("SELECT count(*) FROM offload_jobs") == 1
