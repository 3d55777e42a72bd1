"""Group commit under SIGKILL (issue 20), on both backends: 64 threads and 500 coroutines
of one producer process enqueue one job per call; each id the producer printed was returned
by an enqueue, so it must exist afterwards (acknowledged means committed), and no id may be
returned twice. A first run goes to the end (no caller waits forever); later runs are
killed at random points."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conformance.helpers import RawDB
from tests.sizes import sized

ROOT = Path(__file__).resolve().parents[2]
THREADS, TASKS = 64, 500


def producer(url: str, n: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    command = [sys.executable, "-m", "tests.apps.group_producer", url, str(n)]
    return subprocess.Popen(
        [*command, str(THREADS), str(TASKS)], stdout=subprocess.PIPE, env=env, cwd=ROOT
    )


def acknowledged(output: bytes) -> list[tuple[int, int]]:
    """(job id, argument) of every complete line the producer printed."""
    lines = output.decode().split("\n")[:-1]  # a line cut by the kill is not acknowledged
    return [(int(a), int(b)) for a, b in (line.split() for line in lines if line != "done")]


def stored(url: str) -> dict[int, int]:
    rows = RawDB(url).query("SELECT id, args FROM offload_jobs")
    return {int(r["id"]): _first(r["args"]) for r in rows}


def _first(args: object) -> int:
    if isinstance(args, str):  # SQLite stores the JSON text
        args = [int(args.strip("[]"))]
    assert isinstance(args, list)
    return int(args[0])


def test_every_acknowledged_enqueue_exists_after_producers_are_killed(
    migrated_db_url: str,
) -> None:
    n = sized(2_000, 20_000)
    kills = sized(3, 10)
    full = producer(migrated_db_url, n)
    out, _ = full.communicate(timeout=sized(240, 900))
    assert full.returncode == 0, "the producer failed"
    assert out.endswith(b"done\n"), "some caller never returned"
    seen = acknowledged(out)
    assert sorted(arg for _, arg in seen) == list(range(n))
    assert len({job_id for job_id, _ in seen}) == n, "an id was returned twice"

    rng = random.Random(20)
    for _ in range(kills):
        victim = producer(migrated_db_url, n)
        time.sleep(rng.uniform(0.5, 2.5))
        victim.send_signal(signal.SIGKILL)
        out, _ = victim.communicate(timeout=30)
        seen += acknowledged(out)

    rows = stored(migrated_db_url)
    ids = [job_id for job_id, _ in seen]
    assert len(ids) == len(set(ids)), "an id was returned to two callers"
    missing = [job_id for job_id in ids if job_id not in rows]
    assert not missing, f"{len(missing)} acknowledged jobs were lost: {missing[:10]}"
    assert all(rows[job_id] == arg for job_id, arg in seen), "an id names another job"
    assert len(seen) > n, "the killed producers acknowledged nothing: the test proved nothing"
    print(f"{len(seen):,} acknowledged enqueues, {kills} kills, {len(rows):,} rows, 0 lost")
