"""How a worker's or scheduler's process writes its log: text lines, or one JSON object per
line for log shippers (`offload worker --log-format json`).

A JSON line has fixed keys: `time` (UTC, ISO 8601), `level`, `logger`,
`message`, then each structured field a record carries (`offload.runtime.joblog.FIELDS`, such
as `job_id` or `duration_s`; the job id and attempt of a task's own `current_job().log`), and
`traceback` when it has one.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from offload.runtime.joblog import FIELDS

#: What `configure` accepts as a format.
LOG_FORMATS = ("text", "json")
#: The text format of every offload process that configures its own logging.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line (orjson: newlines inside are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        found = record.__dict__
        for name in FIELDS:
            value = found.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        return orjson.dumps(entry, option=orjson.OPT_UTC_Z, default=str).decode()


def configure(level: str, fmt: str = "text") -> None:
    """Send this process's log records at `level` and above to stderr, in format `fmt`."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])


__all__ = ["LOG_FORMATS", "TEXT_FORMAT", "JsonFormatter", "configure"]
