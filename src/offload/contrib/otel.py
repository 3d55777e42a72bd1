"""OpenTelemetry for offload, built on its middleware hooks (extra `offload[otel]`:
`opentelemetry-api` only; the application configures the SDK and its exporters).

    app = offload.App(url, middleware=[TracingMiddleware(), MetricsMiddleware()])

Tracing: a producer makes a `send {queue}` span (kind PRODUCER) around each insert, as a
child of whatever span is current (the request being served), and writes its W3C trace
context into the jobs' meta (`traceparent`, and `tracestate` when there is one): stored with
the job, shown with it by `offload jobs show` and the HTTP API, and the same for every
attempt. A `traceparent` the caller put in the meta wins: then both keys are left as given
(the runs are traced under that context); otherwise both are written together, and a
`tracestate` given without a `traceparent` is dropped, as it describes no context here.

A worker's supervisor makes a `process {queue}` span (kind CONSUMER) for each run, from the
hand-over to the executor to the recorded outcome: a child of the send span, and
linked to it, as the messaging semantic conventions ask of a message's creation context
(with `link_only=True` it starts a trace of its own, linked only). Attributes follow those
conventions (`messaging.system` "offload", `messaging.destination.name` the queue,
`messaging.message.id` the job id, `messaging.operation.type`); offload's own are
`offload.task`, `offload.attempt`, `offload.outcome` ("lease_lost" for a run whose lease
its worker lost: the span ends then, in error). With `OTEL_SEMCONV_STABILITY_OPT_IN`
holding `messaging/dup`, spans also carry the names of the conventions before 1.26
(`messaging.operation`: "publish" or "process"), for dashboards that still read them.

Metrics: `messaging.client.sent.messages` (jobs stored), `messaging.client.consumed.messages`
(runs started) and `messaging.process.duration` (seconds a run took), per queue, with
`error.type` on failures.

The process span is the supervisor's, whatever executor ran the job: spans a task makes
itself (in a child process, a thread) are not its children.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from offload.core.errors import LeaseLost
from offload.core.job import Job
from offload.core.middleware import Enqueue, JobEnded, JobLost, JobStarted, Middleware
from offload.core.states import JobState

#: The `messaging.system` of offload's spans.
SYSTEM = "offload"
#: The meta keys the trace context travels under (W3C Trace Context's header names).
TRACE_KEYS = ("traceparent", "tracestate")
#: The `offload.outcome` of a run whose lease its worker lost (its span says ERROR).
LEASE_LOST = "lease_lost"

_NS = 1_000_000_000
_SPAN = "otel.span"
#: Outcomes whose span says ERROR: the run failed (whether or not another attempt follows).
_FAILED = (JobState.RETRYING, JobState.DEAD)


def old_names_too() -> bool:
    """Whether `OTEL_SEMCONV_STABILITY_OPT_IN` asks for the attribute names of the messaging
    conventions before 1.26 beside the current ones (`messaging/dup`)."""
    asked = os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "")
    return "messaging/dup" in {part.strip() for part in asked.split(",")}


def _version() -> str:
    from offload import __version__

    return __version__


class TracingMiddleware(Middleware):
    """Producer and consumer spans for an App's jobs (see the module docstring).

    `tracer_provider`: the provider to make spans with (None: the global one, as set by
    `trace.set_tracer_provider`; until it is set, no span is made and no trace context
    stored). A run whose lease this worker loses (`job_lost`) ends its span then, in error
    with `offload.outcome` "lease_lost": another attempt owns the job."""

    def __init__(
        self, tracer_provider: TracerProvider | None = None, *, link_only: bool = False
    ) -> None:
        self._provider = tracer_provider
        self._tracer: trace.Tracer | None = None
        #: True: a process span starts a new trace, linked to its job's send span.
        self.link_only = link_only
        self._propagator = TraceContextTextMapPropagator()
        #: The pre-1.26 names too (`old_names_too`), read when it is made.
        self._dup = old_names_too()
        #: Process spans open in this worker, by (job id, attempt).
        self._running: dict[tuple[int, int], Span] = {}

    @property
    def tracer(self) -> trace.Tracer:
        """The tracer its spans are made with, made on first use."""
        if self._tracer is None:
            self._tracer = trace.get_tracer("offload", _version(), self._provider)
        return self._tracer

    def _off(self) -> bool:
        """True while no SDK is set up (no provider given, and the global one is still the
        API's proxy): then no span is made at all, rather than non-recording ones at a few
        microseconds each. A global provider, once set, stays: it is remembered."""
        if self._provider is not None:
            return False
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            return True
        self._provider = trace.get_tracer_provider()
        return False

    # -- producers -------------------------------------------------------------------

    def before_enqueue(self, enqueue: Enqueue) -> None:
        if self._off():
            return
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": enqueue.queue,
            "offload.task": enqueue.task,
        }
        if enqueue.count != 1:
            attributes["messaging.batch.message_count"] = enqueue.count
        if self._dup:
            attributes["messaging.operation"] = "publish"
        span = self.tracer.start_span(
            f"send {enqueue.queue}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        enqueue.state[_SPAN] = span
        meta = enqueue.meta
        if "traceparent" in meta:  # the caller's own context wins: both keys stay theirs
            return
        meta.pop("tracestate", None)  # a tracestate belongs with its traceparent only
        self._propagator.inject(meta, context=trace.set_span_in_context(span))

    def after_enqueue(self, enqueue: Enqueue) -> None:
        span: Span | None = enqueue.state.pop(_SPAN, None)
        if span is None:
            return
        if enqueue.error is not None:
            span.record_exception(enqueue.error)
            span.set_attribute("error.type", type(enqueue.error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(enqueue.error)))
        elif len(enqueue.ids) == 1:
            span.set_attribute("messaging.message.id", str(enqueue.ids[0]))
        span.end()

    # -- workers ---------------------------------------------------------------------

    def job_started(self, started: JobStarted) -> None:
        if self._off():
            return
        job = started.job
        self._running[(job.id, job.attempt)] = self._process_span(job, started.at)

    def job_ended(self, ended: JobEnded) -> None:
        job = ended.job
        span = self._running.pop((job.id, job.attempt), None)
        if span is None:  # ended without a start seen here: cancelled before it started
            if self._off():
                return
            span = self._process_span(job, ended.at)
        span.set_attribute("offload.outcome", ended.outcome.value)
        if ended.retry_in is not None:
            span.set_attribute("offload.retry_in_s", ended.retry_in)
        error = ended.error
        if error is not None:
            kind = str(error.get("type") or "Error")
            message = str(error.get("message") or "")
            span.add_event(
                "exception",
                {
                    "exception.type": kind,
                    "exception.message": message,
                    "exception.stacktrace": str(error.get("traceback") or ""),
                },
                timestamp=int(ended.at * _NS),
            )
            if ended.outcome in _FAILED:
                span.set_attribute("error.type", kind)
                span.set_status(Status(StatusCode.ERROR, message))
        span.end(end_time=int(ended.at * _NS))

    def job_lost(self, lost: JobLost) -> None:
        job = lost.job
        span = self._running.pop((job.id, job.attempt), None)
        if span is None:  # started before a provider was set: no span to end
            return
        error = LeaseLost(job.id, job.attempt)
        span.set_attribute("offload.outcome", LEASE_LOST)
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end(end_time=int(lost.at * _NS))

    def _process_span(self, job: Job, at: float) -> Span:
        """A started `process {queue}` span, under (or linked to) the job's send span."""
        meta = job.meta
        carrier = {key: meta[key] for key in TRACE_KEYS if isinstance(meta.get(key), str)}
        creation = self._propagator.extract(carrier) if carrier else Context()
        sent = trace.get_current_span(creation).get_span_context()
        links = [Link(sent)] if sent.is_valid else []
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": job.queue,
            "messaging.message.id": str(job.id),
            "offload.task": job.task,
            "offload.attempt": job.attempt,
        }
        if self._dup:
            attributes["messaging.operation"] = "process"
        return self.tracer.start_span(
            f"process {job.queue}",
            context=Context() if self.link_only else creation,
            kind=SpanKind.CONSUMER,
            links=links,
            start_time=int(at * _NS),
            attributes=attributes,
        )


class MetricsMiddleware(Middleware):
    """The messaging conventions' metrics for an App's jobs: jobs sent (stored by
    enqueues), runs started, and each run's duration, per queue.

    `meter_provider`: the provider to make instruments with (None: the global one)."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter = metrics.get_meter("offload", _version(), meter_provider)
        self._sent = meter.create_counter(
            "messaging.client.sent.messages",
            unit="{message}",
            description="Jobs stored by enqueues (a refused insert counts with error.type).",
        )
        self._consumed = meter.create_counter(
            "messaging.client.consumed.messages",
            unit="{message}",
            description="Runs of jobs started by workers.",
        )
        self._duration = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="Seconds each run of a job took, where it ran.",
        )

    def after_enqueue(self, enqueue: Enqueue) -> None:
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.name": "send",
            "messaging.destination.name": enqueue.queue,
        }
        if enqueue.error is not None:
            attributes["error.type"] = type(enqueue.error).__qualname__
            self._sent.add(enqueue.count, attributes)
        else:
            self._sent.add(len(enqueue.ids), attributes)

    def job_started(self, started: JobStarted) -> None:
        self._consumed.add(1, _process_attributes(started.job.queue))

    def job_ended(self, ended: JobEnded) -> None:
        if ended.duration is None:
            return
        attributes = _process_attributes(ended.job.queue)
        if ended.outcome in _FAILED and ended.error is not None:
            attributes["error.type"] = str(ended.error.get("type") or "Error")
        self._duration.record(ended.duration, attributes)


def _process_attributes(queue: str) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.name": "process",
        "messaging.destination.name": queue,
    }


__all__ = [
    "LEASE_LOST",
    "SYSTEM",
    "TRACE_KEYS",
    "MetricsMiddleware",
    "TracingMiddleware",
    "old_names_too",
]
