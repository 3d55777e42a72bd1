"""The process executor's children: one that dies while idle is replaced before it is needed."""

from __future__ import annotations

import os
import select
import signal
import time

import offload
from offload.backends.params import ClaimParams
from offload.core.options import EnqueueOptions
from offload.runtime.executor import Finished
from offload.runtime.processes.executor import ProcessExecutor


def test_a_child_killed_while_idle_is_replaced_and_the_next_job_runs(
    basic_app: offload.App,
) -> None:
    add = offload.Task[[int, int], int](basic_app, basic_app.registry.get("add"), EnqueueOptions())
    add.enqueue(2, 3)
    executor = ProcessExecutor("tests.apps.basic:app", 1, lambda job: None)
    try:
        (first,) = executor._slots
        pid = first.process.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while executor._slots[0] is first:  # as the worker loop: wait, then poll
            assert time.monotonic() < deadline, "the dead child was not replaced"
            select.select(executor.waitables(), [], [], 0.1)
            assert executor.poll() == []  # nothing was running: no job to report
        assert executor._slots[0].process.pid != pid
        (job,) = basic_app.backend.claims.claim(ClaimParams("w1", "default", 1, 30.0))
        executor.submit([job])
        events: list[object] = []
        deadline = time.monotonic() + 10
        while not events:
            assert time.monotonic() < deadline, "the job never finished"
            select.select(executor.waitables(), [], [], 0.1)
            events += executor.poll()
        (done,) = events
        assert isinstance(done, Finished)
        assert (done.ok, done.result) == (True, "5")
    finally:
        executor.close()
