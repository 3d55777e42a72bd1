"""An app with middleware, for worker-process tests: what its hooks see, and the spans of
its TracingMiddleware, are written as JSON lines to $OFFLOAD_TEST_EVENTS and
$OFFLOAD_TEST_SPANS (when set), so a test reads what a worker process saw. The database
URL comes from $OFFLOAD_URL."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import offload
from offload.contrib.otel import TracingMiddleware

QUICK_TWICE = offload.RetryPolicy(max_attempts=2, base=0.05, max_delay=0.1)


def append(path: str | None, line: dict[str, Any]) -> None:
    """One JSON line appended to `path` (O_APPEND: atomic for short writes)."""
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        finally:
            os.close(fd)


def span_line(span: ReadableSpan) -> dict[str, Any]:
    """What a test checks of a span, as JSON."""
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
        "links": [f"{link.context.span_id:016x}" for link in span.links],
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "start": span.start_time,
        "end": span.end_time,
        "pid": os.getpid(),
    }


class JsonLinesExporter(SpanExporter):
    """Spans as JSON lines in a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            append(self.path, span_line(span))
        return SpanExportResult.SUCCESS


class Recorder(offload.Middleware):
    """Writes each hook's event as a JSON line."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def before_enqueue(self, enqueue: offload.Enqueue) -> None:
        enqueue.meta["recorded"] = True
        append(self.path, {"hook": "before_enqueue", "task": enqueue.task, "n": enqueue.count})

    def after_enqueue(self, enqueue: offload.Enqueue) -> None:
        append(self.path, {"hook": "after_enqueue", "ids": list(enqueue.ids)})

    def job_started(self, started: offload.JobStarted) -> None:
        job = started.job
        append(
            self.path,
            {"hook": "job_started", "id": job.id, "attempt": job.attempt, "pid": os.getpid()},
        )

    def job_ended(self, ended: offload.JobEnded) -> None:
        job = ended.job
        line = {
            "hook": "job_ended",
            "id": job.id,
            "attempt": job.attempt,
            "outcome": ended.outcome.value,
            "duration": ended.duration,
            "error": None if ended.error is None else ended.error.get("type"),
            "meta": job.meta,
            "pid": os.getpid(),
        }
        append(self.path, line)

    def job_retrying(self, ended: offload.JobEnded) -> None:
        append(self.path, {"hook": "job_retrying", "id": ended.job.id, "in": ended.retry_in})


provider = TracerProvider()
if os.environ.get("OFFLOAD_TEST_SPANS"):
    provider.add_span_processor(
        SimpleSpanProcessor(JsonLinesExporter(os.environ["OFFLOAD_TEST_SPANS"]))
    )

app = offload.App(
    os.environ.get("OFFLOAD_URL"),
    middleware=[TracingMiddleware(provider), Recorder(os.environ.get("OFFLOAD_TEST_EVENTS"))],
)


@app.task(name="traced.add")
def add(a: int, b: int) -> int:
    return a + b


@app.task(name="traced.flaky", retry=QUICK_TWICE)
def flaky(fail: bool) -> str:
    """Fails its first attempt when `fail`; dead if it fails every one."""
    job = offload.current_job()
    if fail and job.attempt == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


@app.task(name="traced.broken", retry=QUICK_TWICE)
def broken() -> None:
    raise ValueError("always")
