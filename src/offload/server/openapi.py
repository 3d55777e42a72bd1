"""The OpenAPI 3.1 document of the HTTP API, kept by hand next to the routes it describes.

Its request schemas are also what the API validates bodies against (`schema_validator`), so
the document cannot promise a shape the API does not take; a test checks that its paths and
methods are exactly the app's routes, and that every answer fits its response schema.
"""

from __future__ import annotations

import copy
from typing import Any

from offload import __version__
from offload.core.events import EVENT_KINDS
from offload.core.states import JobState
from offload.core.times import TIME_FORMS
from offload.core.tokens import Scope
from offload.core.workflow import OnParentFailure, WorkflowState

_REF = "#/components/schemas/"
#: The most jobs one page of `GET /v1/jobs` holds.
MAX_PAGE = 1000


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF + name}


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


def _json(schema: dict[str, Any], description: str, **headers: Any) -> dict[str, Any]:
    """A JSON response."""
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        out["headers"] = headers
    return out


def _errors(*statuses: int) -> dict[str, Any]:
    """Error responses, each an `Error` body."""
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
    "description": "The job's id.",
}
_STATES = [s.value for s in JobState]
_TIME = {"type": "string", "description": f"Enqueued bound: {TIME_FORMS}."}
_KEY = {"type": "string", "minLength": 1, "maxLength": 255}

#: What one enqueue and a batch share (the per-call options of `Task.options`).
_OPTIONS: dict[str, Any] = {
    "task": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "description": "A task registered with the server's App, by name.",
    },
    "queue": {"type": "string", "description": "A queue instead of the task's own."},
    "priority": {"type": "integer", "description": "Higher runs first (-1000..1000)."},
    "delay": {"type": "number", "description": "Seconds from now until the job may run."},
    "run_at": {
        "type": "string",
        "format": "date-time",
        "description": "An RFC 3339 time with an offset to run at (not with delay).",
    },
    "max_attempts": {"type": "integer", "description": "Attempts before the job is dead."},
    "unique": {
        "type": ["boolean", "string"],
        "description": "true (by task and arguments) or a unique key.",
    },
    "replace": {**_KEY, "description": "Storing the job cancels queued jobs with this key."},
    "channel": {
        **_KEY,
        "description": "The event channel its changes are published on (e.g. user:42): "
        "GET /v1/events?channel=...",
    },
    "depends_on": {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        "description": "Ids of jobs to wait for: the job runs once all of them are over "
        "(an id no job has: 422 unknown_dependency, nothing stored).",
    },
    "on_parent_failure": {
        "type": "string",
        "enum": [rule.value for rule in OnParentFailure],
        "description": "What a parent that ended dead or cancelled does to the job: fail "
        "(the default), cancel, or run anyway.",
    },
}

_ARGS_CONTAINS = (
    "Only jobs with a positional argument containing this JSON value, or, for an object, "
    'whose keyword arguments contain it (PostgreSQL\'s jsonb containment: {"user": 5} finds '
    'user=5 among other keywords, not user="5").'
)

_SELECTION: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "ids": {"type": "array", "items": {"type": "integer"}},
        "queue": {"type": "string"},
        "state": {"type": "string", "enum": _STATES},
        "task": {"type": "string"},
        "before": _TIME,
        "after": _TIME,
        "error_type": {
            "type": "string",
            "description": "Only jobs whose latest error has this exception type name, as "
            "stored (ValueError, myapp.errors.Timeout).",
        },
        "args_contains": {"description": _ARGS_CONTAINS},
        "all_jobs": {"type": "boolean", "description": "Take every job when no id or filter is."},
    },
}

#: What a workflow's views share (`offload.workflow_handle.WorkflowStatus.to_json`).
_WORKFLOW_HEADING: dict[str, Any] = {
    "id": {"type": "integer"},
    "kind": {"type": "string", "description": "workflow, chain, group, chord or map."},
    "name": _nullable("string"),
    "created_at": {"type": "string", "format": "date-time"},
    "state": {"type": "string", "enum": [state.value for state in WorkflowState]},
    "total": {"type": "integer", "description": "Its nodes (one job each)."},
    "finished": {"type": "integer", "description": "Nodes finished (in any way)."},
    "counts": {
        "type": "object",
        "propertyNames": {"enum": _STATES},
        "additionalProperties": {"type": "integer"},
        "description": "Nodes per state, only the states some node is in.",
    },
}
_NODE_NAME = {"type": "string", "minLength": 1, "maxLength": 255}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["type", "message"],
        "properties": {
            "type": {"type": "string", "description": "Stable, snake_case."},
            "message": {"type": "string"},
            "field": {"type": "string", "description": "The request field at fault."},
        },
        "additionalProperties": True,
    },
    "Job": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "id",
            "task",
            "queue",
            "args",
            "kwargs",
            "priority",
            "state",
            "attempt",
            "max_attempts",
            "run_at",
            "enqueued_at",
            "started_at",
            "finished_at",
            "lease_until",
            "worker",
            "result",
            "errors",
            "unique_key",
            "idempotency_key",
            "group_key",
            "meta",
            "progress",
            "cancel_requested",
            "replace_key",
            "superseded_by",
            "channel",
            "workflow_id",
            "node",
            "parents",
            "takes",
        ],
        "properties": {
            "id": {"type": "integer"},
            "task": {"type": "string"},
            "queue": {"type": "string"},
            "args": {"type": "array"},
            "kwargs": {"type": "object"},
            "priority": {"type": "integer"},
            "state": {"type": "string", "enum": _STATES},
            "attempt": {"type": "integer"},
            "max_attempts": {"type": "integer"},
            "run_at": {"type": "string", "format": "date-time"},
            "enqueued_at": {"type": "string", "format": "date-time"},
            "started_at": _nullable("string", format="date-time"),
            "finished_at": _nullable("string", format="date-time"),
            "lease_until": _nullable("string", format="date-time"),
            "worker": _nullable("string"),
            "result": {"description": "The return value (any JSON) once succeeded."},
            "errors": {"type": "array", "items": {"type": "object"}},
            "unique_key": _nullable("string"),
            "idempotency_key": _nullable("string"),
            "group_key": _nullable("string"),
            "meta": {"type": "object"},
            "progress": _nullable("object"),
            "cancel_requested": {"type": "boolean"},
            "replace_key": _nullable("string"),
            "superseded_by": _nullable("integer"),
            "channel": _nullable("string"),
            "workflow_id": {
                **_nullable("integer"),
                "description": "The workflow it is a node of: GET /v1/workflows/{id}.",
            },
            "node": {**_nullable("string"), "description": "Its node name in the workflow."},
            "parents": {"type": "integer", "description": "How many jobs it waits for."},
            "takes": {
                "type": "string",
                "description": "How it takes its parents' results (nothing, one, all, stream).",
            },
        },
    },
    "EnqueueRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["task"],
        "properties": {
            **_OPTIONS,
            "args": {"type": "array", "description": "Positional arguments."},
            "kwargs": {"type": "object", "description": "Keyword arguments."},
        },
    },
    "BatchRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["task", "jobs"],
        "properties": {
            **_OPTIONS,
            "jobs": {
                "type": "array",
                "minItems": 1,
                "description": "Each job's arguments; all are stored, or none.",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"args": {"type": "array"}, "kwargs": {"type": "object"}},
                },
            },
        },
    },
    "BatchResponse": {
        "type": "object",
        "additionalProperties": False,
        "required": ["jobs"],
        "properties": {
            "jobs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["id", "duplicate"],
                    "properties": {"id": {"type": "integer"}, "duplicate": {"type": "boolean"}},
                },
            }
        },
    },
    "JobPage": {
        "type": "object",
        "additionalProperties": False,
        "required": ["jobs", "next"],
        "properties": {
            "jobs": {"type": "array", "items": _ref("Job")},
            "next": {**_nullable("integer"), "description": "The cursor of the next page."},
        },
    },
    "Selection": _SELECTION,
    "Changed": {
        "type": "object",
        "additionalProperties": False,
        "required": ["changed"],
        "properties": {
            "changed": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["id", "queue", "state"],
                    "properties": {
                        "id": {"type": "integer"},
                        "queue": {"type": "string"},
                        "state": {"type": "string", "enum": _STATES},
                    },
                },
            }
        },
    },
    "Queues": {
        "type": "object",
        "additionalProperties": False,
        "required": ["queues"],
        "properties": {
            "queues": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "counts", "workers", "served", "paused", "policy"],
                    "properties": {
                        "name": {"type": "string"},
                        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "workers": {"type": "array", "items": {"type": "string"}},
                        "served": {"type": "boolean"},
                        "paused": {"type": "boolean"},
                        "policy": _nullable("object"),
                        "drain_rate": {"type": "number"},
                        "oldest_available": _nullable("number"),
                        "held": {"type": "integer"},
                        "shed": {"type": "integer"},
                        "limits": {"type": "array", "items": {"type": "string"}},
                        "task_limits": {"type": "object"},
                    },
                },
            }
        },
    },
    "Workers": {
        "type": "object",
        "additionalProperties": False,
        "required": ["workers"],
        "properties": {
            "workers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "id",
                        "host",
                        "pid",
                        "queues",
                        "concurrency",
                        "started_at",
                        "heartbeat_at",
                        "lost",
                    ],
                    "properties": {
                        "id": {"type": "string"},
                        "host": {"type": "string"},
                        "pid": {"type": "integer"},
                        "queues": {"type": "array", "items": {"type": "string"}},
                        "concurrency": {"type": "integer"},
                        "started_at": {"type": "string", "format": "date-time"},
                        "heartbeat_at": {"type": "string", "format": "date-time"},
                        "lost": {"type": "boolean"},
                    },
                },
            }
        },
    },
    "Schedules": {
        "type": "object",
        "additionalProperties": False,
        "required": ["schedules"],
        "properties": {
            "schedules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "name",
                        "cron",
                        "tz",
                        "task",
                        "paused",
                        "next_run",
                        "last_tick",
                        "last_job_id",
                        "last_state",
                    ],
                    "properties": {
                        "name": {"type": "string"},
                        "cron": {"type": "string"},
                        "tz": {"type": "string"},
                        "task": {"type": "string"},
                        "misfire": {"type": "string"},
                        "paused": {"type": "boolean"},
                        "next_run": _nullable("string", format="date-time"),
                        "last_tick": {"type": "string", "format": "date-time"},
                        "last_job_id": _nullable("integer"),
                        "last_state": {"type": ["string", "null"], "enum": [*_STATES, None]},
                    },
                },
            }
        },
    },
    "Event": {
        "type": "object",
        "additionalProperties": False,
        "description": "The `data` of each event of a stream (its `id` line is `id`, its "
        "`event` line is `kind`).",
        "required": [
            "id",
            "kind",
            "at",
            "job_id",
            "task",
            "queue",
            "channel",
            "state",
            "attempt",
            "data",
        ],
        "properties": {
            "id": {
                "type": "string",
                "description": "The event's position; send it back as Last-Event-ID. Opaque.",
            },
            "kind": {"type": "string", "enum": list(EVENT_KINDS)},
            "at": {"type": "string", "format": "date-time"},
            "job_id": _nullable("integer"),
            "task": _nullable("string"),
            "queue": _nullable("string"),
            "channel": _nullable("string"),
            "state": {"type": ["string", "null"], "enum": [*_STATES, None]},
            "attempt": _nullable("integer"),
            "data": {
                "description": "The progress value (progress), the application's payload "
                '(notify), {"error": message} (retrying, dead), else {} or null.'
            },
        },
    },
    "Reconnect": {
        "type": "object",
        "additionalProperties": False,
        "description": "The `data` of the `reconnect` event that ends a stream whose client "
        "fell too far behind: reconnect with `last_event_id` to resume.",
        "required": ["type", "last_event_id"],
        "properties": {
            "type": {"type": "string", "enum": ["slow_client"]},
            "last_event_id": {"type": "string"},
        },
    },
    "WorkflowRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["nodes"],
        "properties": {
            "name": {**_KEY, "description": "A name to find it by in listings."},
            "nodes": {
                "type": "array",
                "minItems": 1,
                "items": _ref("WorkflowNodeRequest"),
                "description": "The DAG's nodes, in any order; all are stored, or none.",
            },
        },
    },
    "WorkflowNodeRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "task"],
        "description": "One node: a job of `task`, started once every node named in `after` "
        "is over (it reads their results with `current_job().parent_results()`).",
        "properties": {
            "name": {**_NODE_NAME, "description": "Unique within the workflow."},
            "task": _OPTIONS["task"],
            "args": {"type": "array", "description": "Positional arguments."},
            "kwargs": {"type": "object", "description": "Keyword arguments."},
            "after": {
                "type": "array",
                "items": _NODE_NAME,
                "description": "Names of the nodes it waits for (a cycle or an unknown "
                "name: 422 invalid_workflow, naming the node).",
            },
            **{
                name: _OPTIONS[name]
                for name in (
                    "on_parent_failure",
                    "queue",
                    "priority",
                    "delay",
                    "run_at",
                    "max_attempts",
                    "channel",
                    "depends_on",
                )
            },
            "meta": {"type": "object", "description": "The job's meta."},
        },
    },
    "WorkflowEnqueued": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "nodes"],
        "properties": {
            "id": {"type": "integer", "description": "The workflow's id."},
            "nodes": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "Each node's job id, by node name.",
            },
        },
    },
    "WorkflowSummary": {
        "type": "object",
        "additionalProperties": False,
        "required": list(_WORKFLOW_HEADING),
        "properties": _WORKFLOW_HEADING,
    },
    "Workflow": {
        "type": "object",
        "additionalProperties": False,
        "required": [*_WORKFLOW_HEADING, "nodes"],
        "properties": {
            **_WORKFLOW_HEADING,
            "nodes": {
                "type": "array",
                "description": "Every node, in job id order.",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": [
                        "job_id",
                        "name",
                        "task",
                        "state",
                        "attempt",
                        "parents",
                        "after",
                        "started_at",
                        "finished_at",
                    ],
                    "properties": {
                        "job_id": {"type": "integer"},
                        "name": {"type": "string"},
                        "task": {"type": "string"},
                        "state": {"type": "string", "enum": _STATES},
                        "attempt": {"type": "integer"},
                        "parents": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "description": "Ids of the jobs it waits for.",
                        },
                        "after": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Names of those that are nodes of this workflow.",
                        },
                        "started_at": _nullable("string", format="date-time"),
                        "finished_at": _nullable("string", format="date-time"),
                    },
                },
            },
        },
    },
    "WorkflowPage": {
        "type": "object",
        "additionalProperties": False,
        "required": ["workflows", "next"],
        "properties": {
            "workflows": {"type": "array", "items": _ref("WorkflowSummary")},
            "next": {**_nullable("integer"), "description": "The cursor of the next page."},
        },
    },
    "Status": {
        "type": "object",
        "additionalProperties": False,
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["ok", "ready"]}},
    },
}

_RETRY_AFTER = {
    "description": "Whole seconds (at least 1) to wait before trying again.",
    "schema": {"type": "integer", "minimum": 1},
}
_CHALLENGE = {"description": "Always `Bearer`.", "schema": {"type": "string"}}
_LOCATION = {"description": "The job's URL.", "schema": {"type": "string"}}
_WORKFLOW_LOCATION = {"description": "The workflow's URL.", "schema": {"type": "string"}}
_ERROR_TEXT = {
    400: "The body is not JSON, or Last-Event-ID is not an event id (bad_event_id).",
    401: "No live bearer token (missing, malformed, unknown or revoked), when the server "
    "checks tokens.",
    403: "The token lacks the scope this route needs.",
    404: "No such job or workflow (or route).",
    409: "The job's state, or a held key, does not allow it.",
    408: "The body did not all arrive within the server's body timeout (type "
    "`body_timeout`); the connection is closed.",
    413: "The body, or a job's arguments, over the size limit.",
    422: "A field is missing, of the wrong type or refused; `field` names it when it can "
    "(a workflow that cannot be stored: invalid_workflow, naming the `node`; depends_on "
    "naming no job: unknown_dependency, with its `job_id`).",
    503: "Back pressure (queue_full, overloaded: with Retry-After) or the database is "
    "unreachable or its schema not current.",
}


def _enqueue_errors() -> dict[str, Any]:
    return _errors(400, 408, 409, 413, 422, 503)


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


_FILTERS = [
    _query("queue", {"type": "string"}, "Only jobs of this queue."),
    _query("state", {"type": "string", "enum": _STATES}, "Only jobs in this state."),
    _query("task", {"type": "string"}, "Only jobs of this task."),
    _query("before", {"type": "string"}, f"Only jobs enqueued before: {TIME_FORMS}."),
    _query("after", {"type": "string"}, "Only jobs enqueued at or after this time."),
    _query(
        "error_type",
        {"type": "string"},
        "Only jobs whose latest error has this exception type name.",
    ),
    _query("args_contains", {"type": "string"}, f"JSON text. {_ARGS_CONTAINS}"),
    _query("cursor", {"type": "integer"}, "The `next` of the previous page."),
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
        "Jobs per page, at most.",
    ),
]

_WORKFLOW_ID = {
    "name": "workflow_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
    "description": "The workflow's id.",
}

_EVENT_ID = {"type": "string", "description": "The `id` of the last event received."}
#: How a stream resumes: a header (EventSource sends it when it reconnects), or the query
#: for clients that cannot set headers; the header wins when both are given.
_RESUME = [
    {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "schema": _EVENT_ID,
        "description": "Resume after this event (a malformed one: 400 bad_event_id).",
    },
    _query("last_event_id", _EVENT_ID, "Resume after this event, if no Last-Event-ID."),
]
_STREAM = {
    "description": "A text/event-stream: each event's `id` is its position, `event` its "
    "kind and `data` an `Event` as JSON; a comment line every 15 s keeps it open. A client "
    "that falls too far behind gets a last `reconnect` event whose data is a `Reconnect`, "
    "and the stream closes.",
    "content": {
        "text/event-stream": {
            "schema": {"type": "string"},
            "x-event-schemas": {"default": _ref("Event"), "reconnect": _ref("Reconnect")},
        }
    },
}

#: The scope of a bearer token each route needs when the server checks tokens (None: the
#: route is open), by path and method: the API enforces this table and the document states it.
SCOPES: dict[tuple[str, str], Scope | None] = {
    ("/v1/jobs", "post"): Scope.ENQUEUE,
    ("/v1/jobs:batch", "post"): Scope.ENQUEUE,
    ("/v1/jobs", "get"): Scope.READ,
    ("/v1/jobs/{job_id}", "get"): Scope.READ,
    ("/v1/queues", "get"): Scope.READ,
    ("/v1/workers", "get"): Scope.READ,
    ("/v1/schedules", "get"): Scope.READ,
    ("/v1/jobs/{job_id}/cancel", "post"): Scope.ADMIN,
    ("/v1/jobs/{job_id}/retry", "post"): Scope.ADMIN,
    ("/v1/jobs:cancel", "post"): Scope.ADMIN,
    ("/v1/jobs:retry", "post"): Scope.ADMIN,
    ("/v1/jobs/{job_id}/events", "get"): Scope.READ,
    ("/v1/workflows", "post"): Scope.ENQUEUE,
    ("/v1/workflows", "get"): Scope.READ,
    ("/v1/workflows/{workflow_id}", "get"): Scope.READ,
    ("/v1/workflows/{workflow_id}/cancel", "post"): Scope.ADMIN,
    ("/v1/events", "get"): Scope.READ,
    ("/health", "get"): None,
    ("/ready", "get"): None,
    # Metrics show queue names and volumes, as /v1/queues does: read, like it.
    ("/metrics", "get"): Scope.READ,
    ("/openapi.json", "get"): None,
}

PATHS: dict[str, Any] = {
    "/v1/jobs": {
        "post": {
            "operationId": "enqueue",
            "summary": "Enqueue one job of a task named in the body.",
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": _KEY,
                    "description": "The same key answers with the same job (200) for the App's "
                    "idempotency retention.",
                }
            ],
            "requestBody": _body("EnqueueRequest"),
            "responses": {
                "202": _json(_ref("Job"), "Stored.", Location=_LOCATION),
                "200": _json(
                    _ref("Job"),
                    "Not stored: a job holding its unique or idempotency key is answered instead.",
                    Location=_LOCATION,
                ),
                **_enqueue_errors(),
            },
        },
        "get": {
            "operationId": "list_jobs",
            "summary": "Jobs newest first, a page at a time (keyset: pass `next` as `cursor`).",
            "parameters": _FILTERS,
            "responses": {"200": _json(_ref("JobPage"), "A page."), **_errors(422, 503)},
        },
    },
    "/v1/jobs:batch": {
        "post": {
            "operationId": "enqueue_many",
            "summary": "Enqueue many jobs of one task: all are stored, or none.",
            "requestBody": _body("BatchRequest"),
            "responses": {
                "202": _json(_ref("BatchResponse"), "Stored (or answered by a key holder)."),
                **_enqueue_errors(),
            },
        }
    },
    "/v1/jobs:cancel": {
        "post": {
            "operationId": "cancel_many",
            "summary": "Cancel selected queued jobs; ask selected running ones to stop.",
            "requestBody": _body("Selection"),
            "responses": {
                "200": _json(_ref("Changed"), "The jobs changed."),
                **_errors(400, 408, 413, 422, 503),
            },
        }
    },
    "/v1/jobs:retry": {
        "post": {
            "operationId": "retry_many",
            "summary": "Run selected dead, cancelled or shed jobs again.",
            "requestBody": _body("Selection"),
            "responses": {
                "200": _json(_ref("Changed"), "The jobs changed."),
                **_errors(400, 408, 413, 422, 503),
            },
        }
    },
    "/v1/jobs/{job_id}": {
        "get": {
            "operationId": "get_job",
            "summary": "One job.",
            "parameters": [_JOB_ID],
            "responses": {"200": _json(_ref("Job"), "The job."), **_errors(404, 503)},
        }
    },
    "/v1/jobs/{job_id}/cancel": {
        "post": {
            "operationId": "cancel",
            "summary": "Cancel a queued job (a running one is asked to stop).",
            "parameters": [_JOB_ID],
            "responses": {"200": _json(_ref("Job"), "The job after."), **_errors(404, 409, 503)},
        }
    },
    "/v1/jobs/{job_id}/retry": {
        "post": {
            "operationId": "retry",
            "summary": "Run a dead, cancelled or shed job again.",
            "parameters": [_JOB_ID],
            "responses": {"200": _json(_ref("Job"), "The job after."), **_errors(404, 409, 503)},
        }
    },
    "/v1/workflows": {
        "post": {
            "operationId": "enqueue_workflow",
            "summary": "Store a workflow given as a DAG of named nodes: all of it, or none.",
            "requestBody": _body("WorkflowRequest"),
            "responses": {
                "202": _json(_ref("WorkflowEnqueued"), "Stored.", Location=_WORKFLOW_LOCATION),
                **_errors(400, 408, 413, 422, 503),
            },
        },
        "get": {
            "operationId": "list_workflows",
            "summary": "Workflows newest first with their progress, a page at a time (keyset: "
            "pass `next` as `cursor`).",
            "parameters": [
                _query("cursor", {"type": "integer"}, "The `next` of the previous page."),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
                    "Workflows per page, at most.",
                ),
            ],
            "responses": {"200": _json(_ref("WorkflowPage"), "A page."), **_errors(422, 503)},
        },
    },
    "/v1/workflows/{workflow_id}": {
        "get": {
            "operationId": "get_workflow",
            "summary": "One workflow: its state, progress and every node with its state and "
            "the jobs it waits for.",
            "parameters": [_WORKFLOW_ID],
            "responses": {"200": _json(_ref("Workflow"), "The workflow."), **_errors(404, 503)},
        }
    },
    "/v1/workflows/{workflow_id}/cancel": {
        "post": {
            "operationId": "cancel_workflow",
            "summary": "Cancel every unfinished node of a workflow (running ones are asked to "
            "stop).",
            "parameters": [_WORKFLOW_ID],
            "responses": {
                "200": _json(_ref("Changed"), "The jobs changed."),
                **_errors(404, 503),
            },
        }
    },
    "/v1/queues": {
        "get": {
            "operationId": "queues",
            "summary": "Each queue's jobs per state, flow control and workers.",
            "responses": {"200": _json(_ref("Queues"), "The queues."), **_errors(503)},
        }
    },
    "/v1/workers": {
        "get": {
            "operationId": "workers",
            "summary": "Registered workers and whether each still heartbeats.",
            "responses": {"200": _json(_ref("Workers"), "The workers."), **_errors(503)},
        }
    },
    "/v1/schedules": {
        "get": {
            "operationId": "schedules",
            "summary": "Stored schedules with their next and last runs.",
            "responses": {"200": _json(_ref("Schedules"), "The schedules."), **_errors(503)},
        }
    },
    "/v1/jobs/{job_id}/events": {
        "get": {
            "operationId": "job_events",
            "summary": "The job's events as server-sent events, from its first (or after "
            "Last-Event-ID) until its terminal one (succeeded, dead, cancelled).",
            "parameters": [_JOB_ID, *_RESUME],
            "responses": {
                "200": _STREAM,
                "204": {
                    "description": "The job's terminal event was the last one delivered: "
                    "nothing follows (an EventSource stops reconnecting)."
                },
                **_errors(400, 404, 422, 503),
            },
        }
    },
    "/v1/events": {
        "get": {
            "operationId": "events",
            "summary": "Events of a queue and/or a channel (neither: every event) as "
            "server-sent events, from now on or after Last-Event-ID.",
            "parameters": [
                _query("queue", {"type": "string"}, "Only events of jobs of this queue."),
                _query(
                    "channel",
                    {"type": "string", "minLength": 1, "maxLength": 255},
                    "Only events on this channel (its jobs' changes and `App.notify`).",
                ),
                *_RESUME,
            ],
            "responses": {"200": _STREAM, **_errors(400, 422, 503)},
        }
    },
    "/health": {
        "get": {
            "operationId": "health",
            "summary": "The process is up (the database is not asked).",
            "responses": {"200": _json(_ref("Status"), "Up.")},
        }
    },
    "/ready": {
        "get": {
            "operationId": "ready",
            "summary": "The database answers and its schema is current.",
            "responses": {"200": _json(_ref("Status"), "Ready."), **_errors(503)},
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics: queue depth by state, oldest due age, workers "
            "(read from the database now) and this process's enqueue counters.",
            "responses": {
                "200": {
                    "description": "Prometheus' text exposition format 0.0.4.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **_errors(503),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document.",
            "responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document.")},
        }
    },
}


def _secured(paths: dict[str, Any], auth: bool) -> dict[str, Any]:
    """`paths` with each operation's security from `SCOPES` if the server checks tokens
    (`auth`): the scope it needs, and its 401 and 403 answers. An open route, or any route
    of a server that checks no token, has no security and never answers 401 or 403."""
    for path, item in paths.items():
        for method, operation in item.items():
            scope = SCOPES[(path, method)] if auth else None
            operation["security"] = [] if scope is None else [{"bearer": [scope.value]}]
            if scope is not None:
                operation["responses"].update(_errors(401, 403))
    return paths


def document(*, auth: bool = True) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (a new copy each call) of a server that checks bearer
    tokens (`auth`) or of one that does not, whose routes need no token."""
    headers = {401: {"WWW-Authenticate": _CHALLENGE}, 503: {"Retry-After": _RETRY_AFTER}}
    responses = {
        f"E{status}": {
            "description": text,
            "content": {"application/json": {"schema": _ref("Error")}},
            **({"headers": headers[status]} if status in headers else {}),
        }
        for status, text in _ERROR_TEXT.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "offload",
            "version": __version__,
            "description": "Enqueue and inspect offload jobs over HTTP with JSON.",
        },
        "paths": _secured(copy.deepcopy(PATHS), auth),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "responses": responses,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token (`offload tokens create`); each operation "
                    "names the scope it needs, and `admin` allows every scope. Checked when "
                    "the server was started with a token configured (or `auth=True`); the "
                    "document a server serves states whether it checks them.",
                }
            },
        },
    }
