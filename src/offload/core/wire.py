"""The HTTP API's names for offload's errors: each exception class with the status code
it answers with and its stable `type`. The server answers by this table and the client
(`offload.client`) raises by it, so the two cannot drift apart."""

from __future__ import annotations

from offload.core.errors import (
    ArgumentsMismatch,
    BackendError,
    BackendUnavailable,
    BackPressure,
    BadEventId,
    ConfigurationError,
    DuplicateJob,
    IdempotencyConflict,
    InvalidTransition,
    InvalidWorkflow,
    JobNotFound,
    OffloadError,
    OutcomeUnknown,
    Overloaded,
    PayloadTooLarge,
    QueueFull,
    QueueNotFound,
    ScheduleNotFound,
    SchemaMismatch,
    SerializationError,
    StorageFull,
    UnknownDependency,
    UnknownTask,
    ValidationError,
    WorkflowNotFound,
)

#: Each exception class the App raises, with its status code and stable type; a class not
#: listed answers as its nearest listed base class.
ERRORS: dict[type[OffloadError], tuple[int, str]] = {
    QueueFull: (503, "queue_full"),
    Overloaded: (503, "overloaded"),
    BackPressure: (503, "back_pressure"),
    PayloadTooLarge: (413, "payload_too_large"),
    UnknownTask: (422, "unknown_task"),
    ArgumentsMismatch: (422, "arguments_mismatch"),
    SerializationError: (422, "serialization_error"),
    InvalidWorkflow: (422, "invalid_workflow"),
    UnknownDependency: (422, "unknown_dependency"),
    IdempotencyConflict: (409, "idempotency_conflict"),
    BadEventId: (400, "bad_event_id"),
    ValidationError: (422, "validation_error"),
    JobNotFound: (404, "job_not_found"),
    WorkflowNotFound: (404, "workflow_not_found"),
    QueueNotFound: (404, "queue_not_found"),
    ScheduleNotFound: (404, "schedule_not_found"),
    DuplicateJob: (409, "duplicate_job"),
    InvalidTransition: (409, "invalid_transition"),
    SchemaMismatch: (503, "schema_mismatch"),
    StorageFull: (503, "storage_full"),
    OutcomeUnknown: (503, "outcome_unknown"),
    BackendUnavailable: (503, "backend_unavailable"),
    BackendError: (500, "backend_error"),
    ConfigurationError: (500, "configuration_error"),
    OffloadError: (500, "error"),
}

#: The enqueue options a `POST /v1/jobs` body carries as they are, by their `Task.options`
#: name (`run_at` travels as RFC 3339 text; the idempotency key as a header).
BODY_OPTIONS = (
    "queue",
    "priority",
    "delay",
    "max_attempts",
    "unique",
    "replace",
    "channel",
    "depends_on",
    "on_parent_failure",
)

#: The error `type` a request answers with when its body did not arrive in time (408).
BODY_TIMEOUT = "body_timeout"
