"""OpenTelemetry tracing (offload.contrib.otel), on both backends: the producer's `send`
spans go to the SDK's in-memory exporter of this process; the `process` spans are made by a
real worker process (process executor) of tests.apps.traced, which writes them to a file.
Each process span is a child of its job's send span, linked to it, in the trace of the
request that enqueued it, for every attempt."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import offload
from offload.backends.params import RescueParams
from offload.contrib.otel import LEASE_LOST, MetricsMiddleware, TracingMiddleware, old_names_too
from tests.apps.traced import span_line
from tests.runtime.conftest import PYTHONPATH
from tests.runtime.test_middleware import producer, read_lines, run_worker_process


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def sent(exporter: InMemorySpanExporter) -> dict[str, dict[str, Any]]:
    """The producer's send spans, by their span id."""
    spans: tuple[ReadableSpan, ...] = exporter.get_finished_spans()
    return {line["span_id"]: line for line in map(span_line, spans) if line["kind"] == "PRODUCER"}


def test_a_job_span_in_the_worker_process_is_a_child_of_its_send_span_in_the_request_trace(
    db_url: str, tmp_path: Path, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    app = producer(db_url, TracingMiddleware(provider))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as request:
        ok = app.enqueue("traced.add", [1, 2])
        retried = app.enqueue("traced.flaky", [True])
        dead = app.enqueue("traced.broken")
        batch = app.enqueue_many("traced.add", [offload.call(i, i) for i in range(3)])
    outside = app.enqueue("traced.add", [5, 5])  # no request: a send span of its own trace
    trace_id = f"{request.get_span_context().trace_id:032x}"
    request_id = f"{request.get_span_context().span_id:016x}"

    sends = sent(exporter)
    assert len(sends) == 5
    by_job: dict[int, dict[str, Any]] = {}
    for send in sends.values():
        attributes = send["attributes"]
        assert send["name"] == "send default"
        assert attributes["messaging.system"] == "offload"
        assert attributes["messaging.operation.type"] == "send"
        assert attributes["messaging.destination.name"] == "default"
        if "messaging.message.id" in attributes:
            by_job[int(attributes["messaging.message.id"])] = send
        else:  # the batch: one span for its three jobs
            assert attributes["messaging.batch.message_count"] == 3
            by_job |= dict.fromkeys((h.id for h in batch), send)
    for job_id in (ok.id, retried.id, dead.id, *(h.id for h in batch)):
        send = by_job[job_id]
        assert (send["trace_id"], send["parent_id"]) == (trace_id, request_id)
        meta = app.job(job_id).job().meta  # the trace context, stored with the job
        assert meta["traceparent"].startswith(f"00-{trace_id}-{send['span_id']}-")
    assert by_job[outside.id]["trace_id"] != trace_id
    assert by_job[outside.id]["parent_id"] is None

    ids = [ok.id, retried.id, dead.id, *(h.id for h in batch), outside.id]
    workers = run_worker_process(db_url, tmp_path, app, ids)
    processed = read_lines(tmp_path / "spans.jsonl")
    assert {span["pid"] for span in processed} <= workers  # made by the worker process
    runs: dict[tuple[int, int], dict[str, Any]] = {}
    for span in processed:
        attributes = span["attributes"]
        assert span["name"] == "process default"
        assert span["kind"] == "CONSUMER"
        assert attributes["messaging.system"] == "offload"
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.destination.name"] == "default"
        job_id = int(attributes["messaging.message.id"])
        attempt = attributes["offload.attempt"]
        runs[(job_id, attempt)] = span
        send = by_job[job_id]
        # A child of its send span and linked to it, every attempt alike (meta survives
        # retries), so in the request's trace.
        assert (span["trace_id"], span["parent_id"]) == (send["trace_id"], send["span_id"])
        assert span["links"] == [send["span_id"]]
        assert span["start"] <= span["end"]
    assert sorted(runs) == sorted(
        [(ok.id, 1), (retried.id, 1), (retried.id, 2), (dead.id, 1), (dead.id, 2)]
        + [(h.id, 1) for h in batch]
        + [(outside.id, 1)]
    )
    outcomes = {key: span["attributes"]["offload.outcome"] for key, span in runs.items()}
    assert outcomes[(ok.id, 1)] == "succeeded"
    assert outcomes[(retried.id, 1)] == "retrying"
    assert outcomes[(retried.id, 2)] == "succeeded"
    assert outcomes[(dead.id, 2)] == "dead"
    assert runs[(ok.id, 1)]["status"] == "UNSET"
    assert runs[(retried.id, 1)]["status"] == "ERROR"
    assert runs[(retried.id, 1)]["attributes"]["error.type"] == "RuntimeError"
    assert runs[(dead.id, 2)]["status"] == "ERROR"
    assert runs[(dead.id, 2)]["attributes"]["error.type"] == "ValueError"
    assert runs[(outside.id, 1)]["trace_id"] != trace_id
    app.close()


def test_link_only_starts_a_trace_per_run_linked_to_its_send_span(
    app: offload.App, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    app.add_middleware(TracingMiddleware(provider, link_only=True))

    @app.task(name="traced_here")
    def traced_here() -> str:
        return "done"

    handle = traced_here.enqueue()
    app.worker(executor="thread", burst=True, install_signals=False).run()
    assert handle.result(timeout=5) == "done"
    spans = {line["kind"]: line for line in map(span_line, exporter.get_finished_spans())}
    send, process = spans["PRODUCER"], spans["CONSUMER"]
    assert process["parent_id"] is None
    assert process["trace_id"] != send["trace_id"]
    assert process["links"] == [send["span_id"]]
    assert process["attributes"]["messaging.message.id"] == str(handle.id)


def test_a_refused_enqueue_ends_its_send_span_in_error(
    app: offload.App, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    app.add_middleware(TracingMiddleware(provider))

    @app.task(name="only_one", unique=True)
    def only_one() -> None:
        return None

    only_one.enqueue()
    with pytest.raises(offload.DuplicateJob):
        only_one.options(on_duplicate="raise").enqueue()
    spans = exporter.get_finished_spans()
    assert [span.status.status_code for span in spans] == [StatusCode.UNSET, StatusCode.ERROR]
    refused = spans[1]
    assert refused.attributes is not None
    assert refused.attributes["error.type"] == "DuplicateJob"
    assert "messaging.message.id" not in refused.attributes
    assert [event.name for event in refused.events] == ["exception"]


def test_a_job_cancelled_before_it_started_still_ends_a_span(
    app: offload.App, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """A run whose start the worker never saw (cancelled in its buffer) gets a span from
    its end, not a leak or a missing one: here the middleware is told of an end alone."""
    middleware = TracingMiddleware(provider)
    app.add_middleware(middleware)

    @app.task(name="never_runs")
    def never_runs() -> None:
        return None

    job = app.job(never_runs.enqueue().id).job()
    middleware.job_ended(
        offload.JobEnded(job, offload.JobState.CANCELLED, None, time.time(), error=None)
    )
    process = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert len(process) == 1
    assert process[0].attributes is not None
    assert process[0].attributes["offload.outcome"] == "cancelled"
    assert process[0].status.status_code is StatusCode.UNSET


def test_a_run_whose_lease_is_lost_ends_its_span_in_error_and_keeps_nothing_open(
    app: offload.App, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """A real lease loss: while attempt 1 runs, its lease is rescued (by a clock 3 s ahead,
    past its 2 s lease; the next attempt is due then); the worker's heartbeat finds it
    taken and tells the middleware (`job_lost`), which ends that run's span then, not when
    (or if) the run returns."""
    middleware = TracingMiddleware(provider)
    app.add_middleware(middleware)
    running = threading.Event()
    release = threading.Event()

    @app.task(name="held", retry=offload.RetryPolicy(max_attempts=3, base=0))
    def held() -> int:
        attempt = offload.current_job().attempt
        if attempt == 1:
            running.set()
            release.wait(30)
        return attempt

    handle = held.enqueue()
    worker = app.worker(executor="thread", install_signals=False, lease=2.0, concurrency=2)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert running.wait(30)
        later = app.backend.now() + timedelta(seconds=3)  # past the 2 s lease
        assert app.backend.claims.rescue(RescueParams(later)) == [handle.id]

        def consumers() -> dict[int, ReadableSpan]:
            spans = exporter.get_finished_spans()
            return {
                int(str((s.attributes or {})["offload.attempt"])): s
                for s in spans
                if s.kind is SpanKind.CONSUMER
            }

        deadline = time.monotonic() + 30
        while 1 not in consumers() and time.monotonic() < deadline:
            time.sleep(0.05)
        lost = consumers()[1]  # ended while the run still waits: the heartbeat saw it
        assert not release.is_set()
        assert handle.result(timeout=30) == 2  # the next attempt, claimed again
        release.set()  # attempt 1 returns now: its end is dropped, no second span for it
    finally:
        release.set()
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    spans = consumers()
    assert sorted(spans) == [1, 2]
    assert len([s for s in exporter.get_finished_spans() if s.kind is SpanKind.CONSUMER]) == 2
    assert lost.attributes is not None
    assert lost.attributes["offload.outcome"] == LEASE_LOST
    assert lost.attributes["error.type"] == "LeaseLost"
    assert lost.status.status_code is StatusCode.ERROR
    assert spans[2].attributes is not None
    assert spans[2].attributes["offload.outcome"] == "succeeded"
    assert middleware._running == {}  # the leak the review found: nothing left open


def test_a_traceparent_the_caller_put_in_meta_wins_and_a_stale_tracestate_goes(
    app: offload.App, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    app.add_middleware(TracingMiddleware(provider))

    @app.task(name="noted")
    def noted() -> None:
        return None

    theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    own = noted.options(meta={"traceparent": theirs, "tracestate": "vendor=1", "k": 1}).enqueue()
    assert own.job().meta == {"traceparent": theirs, "tracestate": "vendor=1", "k": 1}

    alone = noted.options(meta={"tracestate": "vendor=old", "k": 2}).enqueue()
    send = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER][-1]
    context = send.context
    assert context is not None
    ids = f"{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    assert alone.job().meta == {"traceparent": f"00-{ids}", "k": 2}  # the send span's only

    app.worker(executor="thread", burst=True, install_signals=False).run()
    parents = {
        (s.attributes or {})["messaging.message.id"]: s.parent
        for s in exporter.get_finished_spans()
        if s.kind is SpanKind.CONSUMER
    }
    mine, other = parents[str(own.id)], parents[str(alone.id)]
    assert mine is not None and other is not None
    # The run is traced under the caller's context; the other under its send span.
    assert (f"{mine.trace_id:032x}", f"{mine.span_id:016x}") == (theirs[3:35], theirs[36:52])
    assert (other.trace_id, other.span_id) == (context.trace_id, context.span_id)


def test_old_attribute_names_too_when_opted_in(
    app: offload.App,
    exporter: InMemorySpanExporter,
    provider: TracerProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, messaging/dup")
    app.add_middleware(TracingMiddleware(provider))

    @app.task(name="dup")
    def dup() -> None:
        return None

    dup.enqueue()
    app.worker(executor="thread", burst=True, install_signals=False).run()
    spans = {span.kind: span.attributes or {} for span in exporter.get_finished_spans()}
    assert spans[SpanKind.PRODUCER]["messaging.operation"] == "publish"
    assert spans[SpanKind.PRODUCER]["messaging.operation.type"] == "send"
    assert spans[SpanKind.CONSUMER]["messaging.operation"] == "process"
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN")
    assert not old_names_too()


def test_metrics_count_sends_and_runs_and_time_each_run(app: offload.App) -> None:
    reader = InMemoryMetricReader()
    app.add_middleware(MetricsMiddleware(MeterProvider(metric_readers=[reader])))

    @app.task(name="measured", retry=offload.RetryPolicy(max_attempts=1))
    def measured(fail: bool) -> None:
        if fail:
            raise KeyError("missing")

    @app.task(name="only_once", unique=True)
    def only_once() -> None:
        return None

    measured.enqueue_many([(False,), (False,), (True,)])
    only_once.enqueue()
    with pytest.raises(offload.DuplicateJob):
        only_once.options(on_duplicate="raise").enqueue()
    app.worker(executor="thread", burst=True, install_signals=False, queues=["default"]).run()

    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    sent = {
        p.attributes.get("error.type"): p.value for p in points["messaging.client.sent.messages"]
    }
    assert sent == {None: 4, "DuplicateJob": 1}
    consumed = points["messaging.client.consumed.messages"]
    assert sum(p.value for p in consumed) == 4
    assert {p.attributes["messaging.destination.name"] for p in consumed} == {"default"}
    durations = {
        p.attributes.get("error.type"): p.count for p in points["messaging.process.duration"]
    }
    assert durations == {None: 3, "KeyError": 1}


def test_without_an_sdk_nothing_is_traced_and_nothing_stored(sqlite_url: str) -> None:
    """In a fresh process with the API only (no provider set): no traceparent in the meta,
    and the worker's hooks make no span; once the SDK is set up, spans follow."""
    script = f"""
import offload
from offload.contrib.otel import TracingMiddleware
app = offload.App({sqlite_url!r}, middleware=[TracingMiddleware()])
@app.task(name="quiet")
def quiet() -> None:
    return None
before = quiet.enqueue()
app.worker(executor="thread", burst=True, install_signals=False).run()
print(before.job().meta, before.status().value)
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
after = quiet.enqueue()
app.worker(executor="thread", burst=True, install_signals=False).run()
print(sorted(after.job().meta), sorted(s.name for s in exporter.get_finished_spans()))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OFFLOAD_", "OTEL_"))}
    env["PYTHONPATH"] = PYTHONPATH
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "{} succeeded",
        "['traceparent'] ['process default', 'send default']",
    ]
