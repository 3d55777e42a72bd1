"""The FastAPI example's traces, on both backends: requests come in concurrently, each
enqueues a job from its route, and each job's `process` span (made by the worker that runs
it) is in the trace of the request that enqueued it, a child of that request's `send` span.
The request spans are FastAPI's own instrumentation's (opentelemetry-instrumentation-fastapi);
the traceparent each job carries is checked against them too."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from offload.testing import harness
from tests.apps.traced import span_line

REQUESTS = 24


def global_provider() -> TracerProvider:
    """The process's SDK provider, set once (OpenTelemetry refuses a second one): the
    example's TracingMiddleware uses the global provider, as an application's would."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    return provider


def test_each_job_span_is_in_the_trace_of_the_request_that_enqueued_it(db_url: str) -> None:
    from examples.fastapi_app import app as example

    exporter = InMemorySpanExporter()
    provider = global_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    FastAPIInstrumentor.instrument_app(example.web, tracer_provider=provider)
    try:
        with harness(example.jobs, url=db_url) as jobs, TestClient(example.web) as client:

            def order(n: int) -> int:
                body = {"sku": f"sku-{n}", "quantity": n + 1}
                response = client.post("/orders", json=body)
                assert response.status_code == 202, response.text
                job_id: int = response.json()["job_id"]
                return job_id

            with ThreadPoolExecutor(max_workers=8) as pool:
                ids = list(pool.map(order, range(REQUESTS)))
            drained = jobs.drain()
            assert drained.succeeded == REQUESTS
            meta = {job_id: example.jobs.job(job_id).job().meta for job_id in ids}
    finally:
        FastAPIInstrumentor.uninstrument_app(example.web)
        exporter.shutdown()  # its processor stays on the global provider, exporting nothing

    spans = [span_line(span) for span in exporter.get_finished_spans()]
    servers = {s["trace_id"]: s for s in spans if s["kind"] == "SERVER"}
    sends = {s["span_id"]: s for s in spans if s["kind"] == "PRODUCER"}
    processes: dict[int, dict[str, Any]] = {
        int(s["attributes"]["messaging.message.id"]): s for s in spans if s["kind"] == "CONSUMER"
    }
    assert len(servers) == REQUESTS  # a trace per request, concurrent as they were
    assert sorted(processes) == sorted(ids)
    for job_id in ids:
        process = processes[job_id]
        send = sends[process["parent_id"]]
        assert process["links"] == [send["span_id"]]
        assert send["attributes"]["messaging.message.id"] == str(job_id)
        assert send["trace_id"] == process["trace_id"]
        request = servers[send["trace_id"]]  # the request that enqueued this very job
        assert request["attributes"]["http.route"] == "/orders"
        traceparent = meta[job_id]["traceparent"]
        assert traceparent.startswith(f"00-{request['trace_id']}-{send['span_id']}-")
    assert len({processes[job_id]["trace_id"] for job_id in ids}) == REQUESTS
