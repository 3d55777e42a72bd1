"""Workflows run by real worker processes, on both backends: a DAG runs in topological
order, a fan-in survives workers killed with SIGKILL and fires its callback exactly once,
and a reducer streams a large result set in bounded memory."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import offload
from offload.core.options import EnqueueOptions
from tests.runtime.conftest import StartWorker
from tests.sizes import sized


def task(app: offload.App, name: str, **options: Any) -> offload.Task[..., Any]:
    return offload.Task(app, app.registry.get(name), EnqueueOptions(**options))


def test_a_three_level_dag_runs_in_topological_order(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    sleep = task(basic_app, "sleep")
    rng = random.Random(17)
    flow = offload.Workflow()
    levels: list[list[str]] = [[f"a{i}" for i in range(10)], [], []]
    for name in levels[0]:
        flow.add(name, sleep.s(0.01))
    for level, width in ((1, 90), (2, 100)):
        for i in range(width):
            name = f"{'abc'[level]}{i}"
            parents = rng.sample(levels[level - 1], rng.randint(1, 3))
            flow.add(name, sleep.s(0.005), after=parents)
            levels[level].append(name)
    handle = flow.enqueue()
    assert len(handle.nodes) == 200
    for _ in range(2):
        start_worker(concurrency=2)
    record = handle.wait(timeout=120)
    assert handle.status() is offload.WorkflowState.SUCCEEDED
    jobs = {node.job_id: basic_app.backend.jobs.get(node.job_id) for node in record.nodes}
    early = []
    for node in record.nodes:
        started = jobs[node.job_id].started_at
        assert started is not None
        for parent in node.parents:
            finished = jobs[parent].finished_at
            assert finished is not None
            if started < finished:
                early.append((node.name, parent))
    assert early == [], "children started before a parent finished"
    assert sum(len(node.parents) for node in record.nodes) >= 190


def test_a_fan_in_survives_workers_killed_and_fires_once(
    basic_app: offload.App, start_worker: StartWorker, tmp_path: Path
) -> None:
    members, kills_wanted = sized((60, 5), (300, 20))
    sleep = task(basic_app, "sleep", max_attempts=20)
    collect = task(basic_app, "collect", max_attempts=20)
    tags = [f"m{i}" for i in range(members)]
    handle = offload.chord([sleep.s(0.1, tag) for tag in tags], collect.s()).enqueue()
    settings = {"lease": 2, "rescue": 0.5, "concurrency": 2}
    workers = [start_worker(**settings) for _ in range(2)]
    rng = random.Random(5)
    for _ in range(kills_wanted):
        time.sleep(rng.uniform(0.5, 1.0))
        victim = rng.randrange(len(workers))
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(10)
        workers[victim] = start_worker(**settings)
    assert handle.result(timeout=120) == tags  # the callback got every result, in order
    ledger = (tmp_path / "ledger.txt").read_text().split("\n")
    ended = {line.split()[1] for line in ledger if line.startswith("end ")}
    assert ended == set(tags), "every member ran to its end at least once"
    callbacks = basic_app.jobs(task="collect")
    assert len(callbacks) == 1, "the fan-in's callback job exists once"
    runs = [line for line in ledger if line.startswith("callback ")]
    assert runs and all(line.split()[1] == str(members) for line in runs)


def test_map_reduce_counts_words_exactly_in_bounded_memory(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    vocabulary = [f"w{i}" for i in range(50)]

    def lines(count: int) -> list[str]:
        rng = random.Random(count)
        return [" ".join(rng.choices(vocabulary, k=8)) for _ in range(count)]

    start_worker(concurrency=2)
    growth = {}
    for count in (10_000, 100_000):
        text = lines(count)
        expected = Counter(word for line in text for word in line.split())
        handle = basic_app.map("words", text, chunk_size=1000).reduce("word_total").enqueue()
        out = handle.result(timeout=300)
        assert out["counts"] == dict(expected)
        assert out["items"] == count
        growth[count] = out["growth"]
    print(f"reducer RSS growth: 10k items {growth[10_000]} B, 100k items {growth[100_000]} B")
    # Ten times the items must not take anywhere near ten times the memory.
    assert growth[100_000] <= 2 * growth[10_000] + 16 * 1024 * 1024, growth


def test_a_job_child_process_reads_its_parents(
    basic_app: offload.App, start_worker: StartWorker
) -> None:
    add, fail, seen = (
        task(basic_app, "add"),
        task(basic_app, "fail"),
        task(basic_app, "parents_seen"),
    )
    flow = offload.Workflow()
    flow.add("sum", add.s(2, 3))
    flow.add("broken", fail.s("no"))
    flow.add("report", seen.s(), after=["sum", "broken"], on_parent_failure="run")
    handle = flow.enqueue()
    start_worker(concurrency=1)
    report = handle.nodes["report"].result(timeout=60)
    assert report == {"results": {"sum": 5, "broken": None}, "states": ["succeeded", "dead"]}
