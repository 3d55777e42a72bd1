"""How a worker's process writes its log: text lines, or one JSON object per line for log
shippers (`offload worker --log-format json`).

A JSON line has fixed keys: `time` (UTC, ISO 8601), `level`, `logger`, `message`, then each
fact present among `offload.runtime.joblog.FIELDS` (such as `job_id` or `duration_s`; a
task's own `current_job().log` adds its job's id and attempt), and `traceback` when there is
one. Both formats write a record of job events (`joblog.JobLines`) as one line per event;
in JSON a job event's `message` is short and fixed ("job succeeded"), its facts in fields.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from offload.runtime.joblog import FIELDS, JobLines, json_escaped, plain

#: What `configure` accepts as a format.
LOG_FORMATS = ("text", "json")
#: The text format of every offload process that configures its own logging.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Stands for a job event's text while the record's own format is applied once.
_MARK = "\x00offload-line\x00"


class TextFormatter(logging.Formatter):
    """`logging.Formatter`, writing a record of job events as one line per event, each
    framed as the record's own line would be."""

    def format(self, record: logging.LogRecord) -> str:
        batch = record.msg
        if not isinstance(batch, JobLines):
            return super().format(record)
        record.msg = _MARK
        try:
            head, _, tail = super().format(record).partition(_MARK)
        finally:
            record.msg = batch
        line = batch.line
        return "\n".join([f"{head}{line(event, plain)}{tail}" for event in batch.events])


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line (orjson escapes newlines inside), or, for a
    record of job events, one object per event."""

    def format(self, record: logging.LogRecord) -> str:
        base: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC),
            "level": record.levelname,
            "logger": record.name,
        }
        batch = record.msg
        if isinstance(batch, JobLines):
            head = _dumps(base)[:-1] + ","
            facts, q = batch.facts, json_escaped
            return "\n".join([f"{head}{facts(e, q)}}}" for e in batch.events])
        entry = {**base, "message": record.getMessage()}
        found = record.__dict__
        for name in FIELDS:
            value = found.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        return _dumps(entry)


def _dumps(entry: dict[str, Any]) -> str:
    return orjson.dumps(entry, option=orjson.OPT_UTC_Z, default=str).decode()


def configure(level: str, fmt: str = "text") -> None:
    """Send this process's log records at `level` and above to stderr, in format `fmt`."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])


__all__ = ["LOG_FORMATS", "TEXT_FORMAT", "JsonFormatter", "TextFormatter", "configure"]
