"""The JSON log format, the job lines' cheap path, and the unserved-queue warning (in process)."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson
import pytest

import offload
from offload.runtime import joblog
from offload.runtime.logfmt import TEXT_FORMAT, JsonFormatter, TextFormatter, configure
from tests.runtime.jobs import running_job


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.getLogger("offload.jobs").makeRecord(
        "offload.jobs", logging.INFO, __file__, 1, "job %s says %s", (7, "hi\nthere"), None
    )
    record.__dict__.update(extra)
    return record


def test_a_json_line_has_the_fixed_keys_then_the_fields_present() -> None:
    line = JsonFormatter().format(_record(job_id=7, task="t", duration_s=None, other="x"))
    assert "\n" not in line
    entry = orjson.loads(line)
    assert list(entry) == ["time", "level", "logger", "message", "job_id", "task"]
    assert entry["message"] == "job 7 says hi\nthere"
    assert (entry["level"], entry["logger"]) == ("INFO", "offload.jobs")
    assert entry["time"].endswith("Z")


def test_a_json_line_carries_the_traceback_of_an_exception() -> None:
    try:
        raise RuntimeError("broken")
    except RuntimeError:
        record = _record()
        record.exc_info = sys.exc_info()
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["traceback"].startswith("Traceback (most recent call last)")
    assert "RuntimeError: broken" in entry["traceback"]


def test_a_tasks_own_log_carries_its_job_in_json() -> None:
    ctx = offload.JobContext(3, 2, "default", "t", lambda fraction, message: None)
    formatter = JsonFormatter()
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    logger = logging.getLogger("offload.task.t")
    handler = Keep()
    logger.addHandler(handler)
    try:
        ctx.log.warning("careful")
    finally:
        logger.removeHandler(handler)
    entry = orjson.loads(lines[0])
    assert (entry["message"], entry["job_id"], entry["attempt"]) == ("careful", 3, 2)


def _batch() -> logging.LogRecord:
    """A record of two job events, as the worker logs them."""
    record: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record_: logging.LogRecord) -> None:
            record.append(record_)

    handler = Keep()
    joblog.log.addHandler(handler)
    try:
        joblog.lease_lost(5, None, "before its outcome was recorded")
    finally:
        joblog.log.removeHandler(handler)
    (batch,) = record
    assert isinstance(batch.msg, joblog.JobLines)
    assert isinstance(batch.msg.events, list)
    batch.msg.events.append((6, None, "while this worker held it"))
    return batch


def test_a_record_of_job_events_is_one_line_per_event_in_each_format() -> None:
    record = _batch()
    text = TextFormatter(TEXT_FORMAT).format(record).splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert len(text) == 2
    assert re.fullmatch(
        rf"{stamp} WARNING offload.jobs: job 5 lease lost before its outcome was recorded", text[0]
    )
    assert re.fullmatch(
        rf"{stamp} WARNING offload.jobs: job 6 lease lost while this worker held it", text[1]
    )
    entries = [orjson.loads(line) for line in JsonFormatter().format(record).splitlines()]
    assert [(e["message"], e["event"], e["job_id"], e["level"]) for e in entries] == [
        ("job lease lost", "lease_lost", 5, "WARNING"),
        ("job lease lost", "lease_lost", 6, "WARNING"),
    ]
    assert entries[0]["time"] == entries[1]["time"]
    # Any other handler gets the events' lines as the message.
    assert record.getMessage() == (
        "job 5 lease lost before its outcome was recorded\n"
        "job 6 lease lost while this worker held it"
    )


def test_configure_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="log format must be one of text, json, got 'xml'"):
        configure("INFO", "xml")


def test_no_line_is_built_below_info(caplog: pytest.LogCaptureFixture) -> None:
    """With INFO off the job lines cost one level check per batch: nothing is formatted."""

    class Exploding:
        @property
        def id(self) -> int:
            raise AssertionError("a job was read although INFO is off")

    caplog.set_level(logging.WARNING, logger="offload.jobs")
    joblog.started([Exploding()])  # type: ignore[list-item]
    joblog.ended([Exploding()], [Exploding()])  # type: ignore[list-item]
    assert caplog.records == []


def test_a_worker_names_each_queue_it_does_not_serve_once(
    app: offload.App, caplog: pytest.LogCaptureFixture
) -> None:
    for name, queue in [("a", "mail"), ("b", "mail"), ("c", "reports"), ("d", "default")]:
        app.task(name=name, queue=queue)(lambda: None)
    caplog.set_level(logging.INFO, logger="offload")
    worker = app.worker(executor="thread", burst=True, install_signals=False)
    assert worker.run() == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "tasks a, b use queue 'mail', which this worker does not serve: add -q mail",
        "tasks c use queue 'reports', which this worker does not serve: add -q reports",
    ]
    caplog.clear()
    served = app.worker(
        queues=["mail", "reports", "default"], executor="thread", burst=True, install_signals=False
    )
    assert served.run() == 0
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_json_lines_escape_names_and_messages_and_write_floats_as_numbers() -> None:
    """The JSON format is built from templates, not a serializer: whatever a task name or an
    error message holds, each line must still be one valid JSON object with the facts."""
    from offload.backends.params import Outcome
    from offload.core.states import JobState
    from offload.runtime.executor import Finished

    odd = 'tâsk "quoted" \\ back\tslash \u2028 \x01'
    job = running_job(odd, 'q"ueue')
    message = 'bad "input"\nline two \\ \x00 é'
    runs = [
        Finished(job, True, "null", duration=1e-05),
        Finished(job, False, error={"type": 'Weird"Error', "message": message}, duration=0.5),
        Finished(job, False, error={"type": "ValueError", "message": message}),
    ]
    outcomes = [
        Outcome(7, 2, JobState.SUCCEEDED),
        Outcome(7, 2, JobState.RETRYING, delay=12.25),
        Outcome(7, 2, JobState.DEAD),
    ]
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    joblog.log.addHandler(handler)
    old = joblog.log.level
    joblog.log.setLevel(logging.INFO)
    try:
        joblog.started([job])
        joblog.ended(runs, outcomes)
    finally:
        joblog.log.removeHandler(handler)
        joblog.log.setLevel(old)
    lines = [line for r in records for line in JsonFormatter().format(r).split("\n")]
    entries = [orjson.loads(line) for line in lines]
    assert [e["event"] for e in entries] == ["started", "succeeded", "failed", "dead"]
    assert all((e["task"], e["queue"], e["job_id"]) == (odd, 'q"ueue', 7) for e in entries)
    assert entries[1]["duration_s"] == 1e-05  # to the microsecond
    assert (entries[2]["retry_in_s"], entries[2]["duration_s"]) == (12.25, 0.5)
    assert entries[2]["error_type"] == 'Weird"Error'
    assert entries[3]["error"] == message.replace("\n", " ")
    assert "duration_s" not in entries[3]
    assert [e["message"] for e in entries] == [f"job {e['event']}" for e in entries]
