"""A queue moved from one cluster to the other and back while producer processes enqueue
and worker processes drain it: every acknowledged job runs once (0 lost, 0 doubled), as
the results table's primary key on the job id records."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

import offload
from offload.backends.shards import ShardedBackend, shard_of
from tests.apps.shards import RESULTS_SCHEMA
from tests.runtime.conftest import PYTHONPATH, ROOT
from tests.sizes import sized

PRODUCERS = 2
WORKERS = 2
PER_PRODUCER = sized(300, 5000)


def wait_until(condition: object, timeout: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def acknowledged(outs: list[Path]) -> list[int]:
    """Ids the producers got back so far."""
    return [int(line) for out in outs if out.exists() for line in out.read_text().split()]


def test_a_queue_moved_there_and_back_under_load_loses_and_doubles_no_job(
    sharded: offload.App,
    shard_urls: dict[str, str],
    tmp_path: Path,
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    with psycopg.connect(shard_urls["one"], autocommit=True) as conn:
        conn.execute(RESULTS_SCHEMA)
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, OFFLOAD_SHARD_RESULTS=shard_urls["one"])
    worker_env = dict(
        env,
        WORKER_APP="tests.apps.shards:app",
        WORKER_QUEUES="moving",
        WORKER_EXECUTOR="thread",
        WORKER_CONCURRENCY="4",
    )
    for _ in range(WORKERS):
        worker = [sys.executable, "-m", "tests.apps.run_worker"]
        spawned.append(subprocess.Popen(worker, cwd=ROOT, env=worker_env))
    outs = [tmp_path / f"ids{n}.txt" for n in range(PRODUCERS)]
    producers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.apps.shards_produce", str(PER_PRODUCER), str(out)],
            cwd=ROOT,
            env=env,
        )
        for out in outs
    ]
    spawned.extend(producers)
    total = PRODUCERS * PER_PRODUCER

    # Move while both producers enqueue and both workers drain: to two at a third of the
    # jobs, back to one at two thirds. The producers' maps never change: the fences route.
    wait_until(lambda: len(acknowledged(outs)) >= total // 3, 120, "a third of the jobs")
    sharded.move_queue("moving", "two")
    wait_until(lambda: len(acknowledged(outs)) >= 2 * total // 3, 120, "two thirds")
    sharded.move_queue("moving", "one")
    for producer in producers:
        assert producer.wait(120) == 0

    ids = acknowledged(outs)
    assert len(ids) == len(set(ids)) == total
    per_shard = {index: sum(shard_of(i) == index for i in ids) for index in (0, 1)}
    assert per_shard[0] > 0 and per_shard[1] > 0, per_shard  # the moves happened under load

    def runs() -> int:
        with psycopg.connect(shard_urls["one"]) as conn:
            row = conn.execute("SELECT count(*) FROM shard_runs").fetchone()
        assert row is not None
        return int(row[0])

    wait_until(lambda: runs() >= total, 120, "every job to run")
    with psycopg.connect(shard_urls["one"]) as conn:
        ran = {row[0] for row in conn.execute("SELECT job_id FROM shard_runs")}
        doubled = conn.execute("SELECT job_id FROM shard_doubles").fetchall()
    assert ran == set(ids)  # 0 lost, and nothing ran that no producer was told of
    assert doubled == []  # 0 run twice
    assert isinstance(sharded.backend, ShardedBackend)
    wait_until(lambda: sharded.queue_counts().get("moving") == {"succeeded": total}, 30, "outcomes")
    assert sharded.backend.unfinished("moving") == {"one": 0, "two": 0}
