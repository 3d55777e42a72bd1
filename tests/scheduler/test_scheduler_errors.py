"""A scheduler refuses bad settings when built, and survives unexpected errors at run time;
an embedded scheduler that stops anyway stops its worker loudly."""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

import pytest

import offload
from offload.backends.params import JobPruneParams
from offload.core.errors import ConfigurationError
from offload.core.states import JobState


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retention": {JobState.RUNNING: 60}}, "retention.*'running'.*not a finished state"),
        ({"retention": {"deadd": 60}}, "retention.*'deadd'.*did you mean 'dead'"),
        ({"retention": {JobState.DEAD: -1}}, "retention of dead"),
        ({"retention": {JobState.DEAD: "30d"}}, "retention of dead"),
        ({"retention": {JobState.DEAD: math.nan}}, "retention of dead"),
        ({"retention": [JobState.DEAD]}, "retention must be a mapping"),
        ({"interval": 0}, "interval"),
        ({"rescue_interval": -1.0}, "rescue_interval"),
        ({"prune_interval": math.inf}, "prune_interval"),
        ({"down_after": "5"}, "down_after"),
    ],
    ids=str,
)
def test_bad_settings_are_refused_when_the_scheduler_is_built(
    app: offload.App, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        app.scheduler(**options)


def test_retention_by_state_name_is_accepted(app: offload.App) -> None:
    scheduler = app.scheduler(retention={"dead": 60, JobState.SUCCEEDED: 0})
    assert scheduler.retention == {JobState.DEAD: 60.0, JobState.SUCCEEDED: 0.0}


def test_an_unexpected_error_is_logged_with_its_traceback_and_the_scheduler_carries_on(
    app: offload.App, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = app.scheduler(interval=0.05, prune_interval=0.05)
    prune = scheduler.backend.jobs.prune
    calls: list[int] = []
    pruned_again = threading.Event()

    def failing_once(params: JobPruneParams) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("not an OffloadError")
        pruned_again.set()
        return prune(params)

    scheduler.backend.jobs.prune = failing_once  # type: ignore[method-assign]
    thread = threading.Thread(target=scheduler.run)
    caplog.set_level(logging.ERROR, logger="offload.scheduler")
    thread.start()
    try:
        assert pruned_again.wait(20), "the scheduler did not run another turn after the error"
    finally:
        scheduler.stop()
        thread.join(20)
        scheduler.backend.jobs.prune = prune  # type: ignore[method-assign]
    assert not thread.is_alive()
    (failure,) = [r for r in caplog.records if r.name == "offload.scheduler" and r.exc_info]
    assert failure.levelno == logging.ERROR
    assert failure.exc_info is not None
    assert isinstance(failure.exc_info[1], RuntimeError)
    assert "in failing_once" in caplog.text  # its traceback is logged


def test_a_worker_whose_embedded_scheduler_stops_stops_loudly(
    app: offload.App, caplog: pytest.LogCaptureFixture
) -> None:
    worker = app.worker(scheduler=True, executor="thread", install_signals=False)
    assert worker.scheduler is not None

    def broken() -> int:
        raise RuntimeError("scheduler thread ended")

    worker.scheduler.run = broken  # type: ignore[method-assign]
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(worker.run()))
    thread.start()
    try:
        thread.join(30)
        assert not thread.is_alive(), "the worker ran on without its scheduler"
    finally:
        if thread.is_alive():
            worker.stop()
            thread.join(30)
    assert codes == [1]
    assert "RuntimeError: scheduler thread ended" in caplog.text
