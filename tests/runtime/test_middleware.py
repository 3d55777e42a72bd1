"""Middleware hooks (offload.Middleware), on both backends: what producers and a worker's
supervisor tell them, in a real worker process of the process executor and in the test's
own; a middleware that raises loses nothing and is logged once per hook; bad middleware is
refused by name."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import offload
from offload.backends.params import Outcome
from offload.core.states import JobState
from offload.runtime.executor import Finished
from offload.runtime.hooks import HookErrors
from tests.apps import traced
from tests.runtime.conftest import PYTHONPATH, ROOT
from tests.runtime.jobs import running_job

HOOKS = ("before_enqueue", "after_enqueue", "job_started", "job_ended", "job_retrying")


def producer(url: str, *middleware: offload.Middleware) -> offload.App:
    """An App on `url` with tests.apps.traced's tasks and `middleware` (not the module's)."""
    app = offload.App(url, middleware=middleware)
    app.migrate()
    for name in traced.app.registry.names():
        app.registry.add(traced.app.registry.get(name))
    return app


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_worker_process(url: str, tmp_path: Path, app: offload.App, ids: Sequence[int]) -> set[int]:
    """Burst workers of tests.apps.traced (process executor) until every job of `ids` is
    over (a retry's backoff may outlast a burst); return the workers' pids."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env |= {
        "OFFLOAD_URL": url,
        "PYTHONPATH": PYTHONPATH,
        "OFFLOAD_TEST_EVENTS": str(tmp_path / "events.jsonl"),
        "OFFLOAD_TEST_SPANS": str(tmp_path / "spans.jsonl"),
    }
    command = [sys.executable, "-m", "offload", "--app", "tests.apps.traced:app", "worker"]
    pids: set[int] = set()
    for _ in range(20):
        with subprocess.Popen(
            [*command, "--burst", "--concurrency", "2"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            pids.add(process.pid)
            _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        if all(app.job(job_id).status().finished for job_id in ids):
            return pids
        time.sleep(0.2)
    raise AssertionError("jobs still unfinished after 20 burst workers")


def test_a_worker_process_tells_its_middleware_of_each_start_end_and_retry(
    db_url: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    app = producer(db_url, traced.Recorder(str(events)))
    ok = app.enqueue("traced.add", [1, 2])
    retried = app.enqueue("traced.flaky", [True])
    dead = app.enqueue("traced.broken")
    batch = app.enqueue_many("traced.add", [offload.call(i, i) for i in range(3)])
    ids = [ok.id, retried.id, dead.id, *(h.id for h in batch)]
    enqueued = read_lines(events)
    assert [(e["hook"], e.get("n")) for e in enqueued] == [
        ("before_enqueue", 1), ("after_enqueue", None),
        ("before_enqueue", 1), ("after_enqueue", None),
        ("before_enqueue", 1), ("after_enqueue", None),
        ("before_enqueue", 3), ("after_enqueue", None),
    ]  # fmt: skip
    assert [e["ids"] for e in enqueued[1::2]] == [[ok.id], [retried.id], [dead.id], ids[3:]]
    assert app.job(ok.id).job().meta == {"recorded": True}  # what before_enqueue added

    worker_pids = run_worker_process(db_url, tmp_path, app, ids)
    seen = read_lines(events)[len(enqueued) :]
    # In the supervisor (the process the CLI started), not the child that ran the job.
    assert {e["pid"] for e in seen if "pid" in e} <= worker_pids
    ends = {(e["id"], e["attempt"]): e for e in seen if e["hook"] == "job_ended"}
    starts = {(e["id"], e["attempt"]) for e in seen if e["hook"] == "job_started"}
    assert set(ends) == starts
    for job_id in (ok.id, *ids[3:]):
        assert ends[(job_id, 1)]["outcome"] == "succeeded"
        assert ends[(job_id, 1)]["duration"] > 0
        assert ends[(job_id, 1)]["meta"] == {"recorded": True}
    assert ends[(retried.id, 1)]["outcome"] == "retrying"
    assert ends[(retried.id, 1)]["error"] == "RuntimeError"
    assert ends[(retried.id, 2)]["outcome"] == "succeeded"
    assert ends[(dead.id, 1)]["outcome"] == "retrying"
    assert ends[(dead.id, 2)]["outcome"] == "dead"
    assert ends[(dead.id, 2)]["error"] == "ValueError"
    retries = sorted(e["id"] for e in seen if e["hook"] == "job_retrying")
    assert retries == sorted([retried.id, dead.id])
    assert all(0 < e["in"] <= 0.1 for e in seen if e["hook"] == "job_retrying")
    app.close()


class Kept(offload.Middleware):
    """Keeps each event it is given."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def before_enqueue(self, enqueue: offload.Enqueue) -> None:
        enqueue.meta["kept"] = len(self.seen)
        self.seen.append(("before_enqueue", (enqueue.task, enqueue.count)))

    def after_enqueue(self, enqueue: offload.Enqueue) -> None:
        error = None if enqueue.error is None else type(enqueue.error).__name__
        self.seen.append(("after_enqueue", (list(enqueue.ids), error)))

    def job_started(self, started: offload.JobStarted) -> None:
        self.seen.append(("job_started", started.job.id))

    def job_ended(self, ended: offload.JobEnded) -> None:
        self.seen.append(("job_ended", (ended.job.id, ended.outcome, ended.succeeded)))


def run_in_process(app: offload.App, ids: Sequence[int]) -> None:
    """Burst workers in this process (threads) until every job of `ids` is over."""
    for _ in range(50):
        app.worker(executor="thread", burst=True, install_signals=False, concurrency=2).run()
        if all(app.job(job_id).status().finished for job_id in ids):
            return
        time.sleep(0.05)
    raise AssertionError("jobs still unfinished")


def test_async_enqueues_workflows_and_refused_inserts_go_through_the_hooks(
    app: offload.App,
) -> None:
    kept = Kept()
    app.add_middleware(kept)

    @app.task(name="double")
    def double(n: int) -> int:
        return 2 * n

    @app.task(name="once", unique=True)
    def once() -> None:
        return None

    async def enqueue_two() -> list[int]:
        handles = await asyncio.gather(double.enqueue_async(1), double.enqueue_async(2))
        return [h.id for h in handles]

    async_ids = asyncio.run(enqueue_two())
    flow = offload.chain(double.s(3), double.s()).enqueue()  # type: ignore[call-arg]
    first = once.enqueue()
    with pytest.raises(offload.DuplicateJob):
        once.options(on_duplicate="raise").enqueue()
    befores = [detail for hook, detail in kept.seen if hook == "before_enqueue"]
    afters = [detail for hook, detail in kept.seen if hook == "after_enqueue"]
    assert befores == [("double", 1)] * 4 + [("once", 1)] * 2  # a workflow: one per node
    assert sorted(ids for ids, _ in afters[:2]) == sorted([[i] for i in async_ids])
    node_ids = [ids[0] for ids, _ in afters[2:4]]
    assert sorted(node_ids) == sorted(h.id for h in flow.nodes.values())
    assert afters[4] == ([first.id], None)
    assert afters[5] == ([], "DuplicateJob")  # the refused insert: its error, no ids
    for job_id in [*async_ids, *node_ids]:
        assert "kept" in app.job(job_id).job().meta  # stored, async and workflow alike

    run_in_process(app, [*async_ids, *node_ids, first.id])
    started = [detail for hook, detail in kept.seen if hook == "job_started"]
    ended = [detail for hook, detail in kept.seen if hook == "job_ended"]
    assert sorted(started) == sorted([*async_ids, *node_ids, first.id])
    assert sorted(ended) == sorted(
        (job_id, JobState.SUCCEEDED, True) for job_id in [*async_ids, *node_ids, first.id]
    )


class Exploding(offload.Middleware):
    """Raises in every hook."""

    def before_enqueue(self, enqueue: offload.Enqueue) -> None:
        raise RuntimeError("before_enqueue broke")

    def after_enqueue(self, enqueue: offload.Enqueue) -> None:
        raise RuntimeError("after_enqueue broke")

    def job_started(self, started: offload.JobStarted) -> None:
        raise RuntimeError("job_started broke")

    def job_ended(self, ended: offload.JobEnded) -> None:
        raise RuntimeError("job_ended broke")

    def job_retrying(self, ended: offload.JobEnded) -> None:
        raise RuntimeError("job_retrying broke")


class ExplodingObserver:
    """A worker observer (metrics and the like) that raises."""

    def started(self, jobs: Sequence[offload.Job]) -> None:
        raise RuntimeError("observer broke")

    def ended(self, runs: Sequence[Finished], outcomes: Sequence[Outcome]) -> None:
        raise RuntimeError("observer broke")


JOBS = 30


def test_a_middleware_that_raises_loses_no_job_and_is_logged_once_per_hook(
    app: offload.App, caplog: pytest.LogCaptureFixture
) -> None:
    kept = Kept()
    app.add_middleware(Exploding())
    app.add_middleware(kept)  # after the broken one: still called, every time

    @app.task(name="fails_once", retry=offload.RetryPolicy(max_attempts=2, base=0.01))
    def fails_once(n: int) -> int:
        if offload.current_job().attempt == 1:
            raise RuntimeError("first attempt")
        return n

    caplog.set_level(logging.ERROR, logger="offload")
    handles = [fails_once.enqueue(n) for n in range(JOBS)]
    handles += fails_once.enqueue_many([(n,) for n in range(JOBS)])
    ids = [h.id for h in handles]
    assert len(set(ids)) == 2 * JOBS  # every enqueue stored its job
    observer = ExplodingObserver()
    for _ in range(50):
        worker = app.worker(
            executor="thread",
            burst=True,
            install_signals=False,
            concurrency=4,
            observer=observer,
        )
        worker.run()
        if all(app.job(job_id).status().finished for job_id in ids):
            break
        time.sleep(0.05)
    for handle, n in zip(handles, [*range(JOBS), *range(JOBS)], strict=True):
        assert handle.result(timeout=5) == n  # every outcome recorded: retried, succeeded
    ended = [detail for hook, detail in kept.seen if hook == "job_ended"]
    assert len(ended) == 4 * JOBS  # two attempts each, the later middleware told of each
    lines = [r for r in caplog.records if r.name == "offload.middleware"]
    said = sorted(r.getMessage().split(" raised in ")[1].split(";")[0] for r in lines)
    assert said == sorted([*HOOKS, "ended", "started"])  # once per hook, not per job
    assert all(r.exc_info is not None for r in lines)  # with the traceback


def test_hook_errors_speak_again_after_their_interval_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors = HookErrors(interval=0.2)
    owner = Exploding()
    caplog.set_level(logging.ERROR, logger="offload.middleware")
    for _ in range(5):
        try:
            raise RuntimeError("x")
        except RuntimeError:
            errors.failed(owner, "job_ended")
    time.sleep(0.25)
    try:
        raise RuntimeError("x")
    except RuntimeError:
        errors.failed(owner, "job_ended")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "4 more failures" in messages[1]


def test_middleware_meta_that_is_not_json_is_logged_and_the_job_stored_as_given(
    app: offload.App, caplog: pytest.LogCaptureFixture
) -> None:
    class Unencodable(offload.Middleware):
        def before_enqueue(self, enqueue: offload.Enqueue) -> None:
            enqueue.meta["bad"] = object()

    app.add_middleware(Unencodable())

    @app.task(name="plain")
    def plain() -> None:
        return None

    caplog.set_level(logging.ERROR, logger="offload.middleware")
    handle = plain.options(meta={"mine": 1}).enqueue()
    assert app.job(handle.id).job().meta == {"mine": 1}
    assert len([r for r in caplog.records if "before_enqueue (meta)" in r.getMessage()]) == 1


def test_bad_middleware_is_refused_by_name(sqlite_url: str) -> None:
    with pytest.raises(offload.ConfigurationError, match=r"Kept.*\(a class\)"):
        offload.App(sqlite_url, middleware=[Kept])  # type: ignore[list-item]
    app = offload.App(sqlite_url)
    with pytest.raises(offload.ConfigurationError, match="got 'tracing' \\(str\\)"):
        app.add_middleware("tracing")  # type: ignore[arg-type]
    assert app.middleware.items == []
    app.close()


def test_without_middleware_nothing_is_called_per_job(sqlite_url: str) -> None:
    """The cheap path: an App without middleware has no enqueue or job hooks to run, and a
    middleware with only enqueue hooks adds nothing to its workers."""

    class EnqueueOnly(offload.Middleware):
        def before_enqueue(self, enqueue: offload.Enqueue) -> None:
            return None

    app = offload.App(sqlite_url)
    assert (app.middleware.enqueue, app.middleware.jobs) == (False, False)
    app.add_middleware(EnqueueOnly())
    assert (app.middleware.enqueue, app.middleware.jobs) == (True, False)
    worker = app.worker(executor="thread", install_signals=False)
    assert app.middleware not in worker._observers
    app.close()


def test_an_enqueue_in_the_callers_transaction_is_said_to_be_one(
    app: offload.App, db_url: str
) -> None:
    """`transactional` is True for `conn=` enqueues, whose jobs exist once the caller
    commits; the meta the hooks add is stored with them."""
    from tests.conformance.test_transactional import caller_connection

    seen: list[tuple[bool, list[int]]] = []

    class Watch(offload.Middleware):
        def before_enqueue(self, enqueue: offload.Enqueue) -> None:
            enqueue.meta["watched"] = True

        def after_enqueue(self, enqueue: offload.Enqueue) -> None:
            seen.append((enqueue.transactional, list(enqueue.ids)))

    app.add_middleware(Watch())

    @app.task(name="ship")
    def ship(order: int) -> int:
        return order

    with caller_connection(db_url) as conn:
        inside = ship.options(conn=conn).enqueue(1)
        conn.commit()
    outside = ship.enqueue(2)
    assert seen == [(True, [inside.id]), (False, [outside.id])]
    assert app.job(inside.id).job().meta == {"watched": True}


def test_job_lost_alone_makes_a_worker_tell_of_jobs_and_each_taker_is_guarded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`job_lost` (the worker's heartbeat found a running job's lease taken; see
    tests/contrib/test_otel.py for a real loss) is a job hook like the others: a middleware
    with it alone is told of jobs, and one that raises in it spares the next."""
    from offload.runtime.hooks import Middlewares

    seen: list[tuple[int, int, float]] = []

    class Broken(offload.Middleware):
        def job_lost(self, lost: offload.JobLost) -> None:
            raise RuntimeError("down")

    class Told(offload.Middleware):
        def job_lost(self, lost: offload.JobLost) -> None:
            seen.append((lost.job.id, lost.job.attempt, lost.at))

    job = running_job()
    assert Middlewares([Told()]).jobs
    hooks = Middlewares([Broken(), Told()])
    caplog.set_level(logging.ERROR, logger="offload.middleware")
    before = time.time()
    hooks.lost([job])
    assert [(i, a) for i, a, _ in seen] == [(7, 2)]
    assert before <= seen[0][2] <= time.time()
    lines = [r.getMessage() for r in caplog.records if r.name == "offload.middleware"]
    assert len(lines) == 1 and "Broken raised in job_lost" in lines[0], lines
