"""Torture: short jobs while a killer SIGKILLs a random worker every 0.5 s (2,500 jobs through
25 kills; full size, with OFFLOAD_TEST_FULL=1: 10,000 jobs through 100 kills)."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import offload
from offload.core.options import EnqueueOptions
from tests.runtime.conftest import StartWorker
from tests.runtime.test_worker_processes import counts, wait_until
from tests.sizes import sized


def test_jobs_through_kills_every_half_second_are_never_lost(
    basic_app: offload.App, start_worker: StartWorker, tmp_path: Path
) -> None:
    total, kills_wanted = sized((2_500, 25), (10_000, 100))
    # A job held by three killed workers in a row uses up 3 attempts and goes dead, as the
    # contract says; with many kills that happens to a few jobs per run. This test is about
    # nothing being lost, so each job gets enough attempts to outlive the killer.
    sleep = offload.Task[..., object](
        basic_app, basic_app.registry.get("sleep"), EnqueueOptions(max_attempts=20)
    )
    for start in range(0, total, 1000):
        sleep.enqueue_many(
            [offload.call(0.02, f"j{i}") for i in range(start, min(start + 1000, total))]
        )
    settings = {"lease": 2, "rescue": 0.5, "concurrency": 2}
    workers = [start_worker(**settings) for _ in range(3)]
    rng = random.Random(11)
    kills = 0
    while kills < kills_wanted:
        time.sleep(0.5)
        victim = rng.randrange(len(workers))
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(10)
        workers[victim] = start_worker(**settings)
        kills += 1
    try:
        wait_until(lambda: counts(basic_app).get("succeeded", 0) == total, 90, "all to succeed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; jobs by state now: {counts(basic_app)}") from None
    assert counts(basic_app) == {"succeeded": total}
    ledger = (tmp_path / "ledger.txt").read_text().split("\n")
    ends = [line.split()[1] for line in ledger if line.startswith("end ")]
    assert set(ends) == {f"j{i}" for i in range(total)}, "every job completed at least once"
    print(f"{total} jobs, {kills} kills, 0 lost, {len(ends) - total} ran more than once")
