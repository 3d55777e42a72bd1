"""A burst worker runs until nothing is due, exactly: on both backends, with the thread
executor, a job that enqueues a follow-up leaves no follow-up behind, whether or not the
follow-up's wake-up reaches the worker before it looks for more work."""

from __future__ import annotations

import os

import pytest

import offload
from offload.backends.base import Listener
from offload.core.states import JobState

RUNS = 20


class LostWakeups:
    """A listener whose descriptor never turns readable: every wake-up is late."""

    def __init__(self, real: Listener) -> None:
        self._real = real
        self._read, self._write = os.pipe()

    @property
    def address(self) -> str | None:
        return self._real.address

    def fileno(self) -> int:
        return self._read

    def drain(self) -> None:
        return None

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)
        self._real.close()


@pytest.mark.parametrize("wakeups", ["delivered", "lost"])
def test_a_burst_worker_exits_only_after_the_follow_ups_its_jobs_enqueued(
    app: offload.App, monkeypatch: pytest.MonkeyPatch, wakeups: str
) -> None:
    if wakeups == "lost":
        listener = app.backend.listener
        monkeypatch.setattr(app.backend, "listener", lambda: LostWakeups(listener()))

    @app.task(name="follow_up")
    def follow_up(n: int) -> int:
        return n

    @app.task(name="parent")
    def parent(n: int) -> None:
        follow_up.enqueue(n)

    left: list[tuple[int, str]] = []
    for n in range(RUNS):
        handle = parent.enqueue(n)
        worker = app.worker(executor="thread", burst=True, install_signals=False, concurrency=2)
        assert worker.run() == 0
        assert handle.status() is JobState.SUCCEEDED
        (child,) = [j for j in app.jobs(task="follow_up", limit=RUNS) if j.args == [n]]
        if child.state is not JobState.SUCCEEDED:
            left.append((n, str(child.state)))
    assert left == [], f"{len(left)} of {RUNS} burst runs exited with a follow-up due: {left}"
