"""offload: durable background jobs and messaging for Python, on SQLite or PostgreSQL.

import offload

app = offload.App("sqlite:///jobs.db")

@app.task(queue="mail", max_attempts=5)
def send_welcome(user_id: int) -> None: ...

handle = send_welcome.enqueue(42)   # returns once the job is durable
handle.result(timeout=10)

The public API is what this module exports (`__all__`), `offload.client` (the HTTP
API's Python client), `offload.testing` (helpers for an application's tests) and
`offload.contrib.*` (web frameworks); other `offload.*` submodules are internal and may
change between releases. The `offload` command is public too.
"""

from offload.app import App, AsyncTask, Call, Task, call
from offload.core.batch import BatchItem, ItemFailed
from offload.core.errors import (
    ApiError,
    ArgumentsMismatch,
    BackendError,
    BackendUnavailable,
    BackPressure,
    BadEventId,
    BatchResultMismatch,
    ConfigurationError,
    CrossShard,
    DuplicateJob,
    ElectionSettingInvalid,
    ExtraMissing,
    Forbidden,
    GroupNotFound,
    IdempotencyConflict,
    InvalidTransition,
    InvalidWorkflow,
    JobCancelled,
    JobFailed,
    JobNotFound,
    LeaseLost,
    OffloadError,
    OffsetOutOfRange,
    OutcomeUnknown,
    Overloaded,
    ParentFailed,
    ParentResultsTooLarge,
    PayloadTooLarge,
    QueueFull,
    QueueMoved,
    QueueNotFound,
    QueueOnTwoShards,
    RequestRejected,
    ResultTimeout,
    ScheduleNotFound,
    SchemaMismatch,
    SerializationError,
    ShardMismatch,
    StorageFull,
    Unauthorized,
    UnknownDependency,
    UnknownShard,
    UnknownTask,
    ValidationError,
    WorkflowNotFound,
)
from offload.core.events import Event, EventCursor
from offload.core.flow import QueuePolicy, Rate
from offload.core.job import Job
from offload.core.middleware import Enqueue, JobEnded, JobLost, JobStarted, Middleware
from offload.core.options import RetryPolicy
from offload.core.records import Leadership, ScheduleState, WorkerInfo
from offload.core.schedule import Misfire
from offload.core.selection import BulkProgress
from offload.core.shaping import Unique
from offload.core.states import JobState
from offload.core.stats import StatsPoint
from offload.core.topics import GroupState, Message, TopicState
from offload.core.workflow import OnParentFailure, ParentOutcome, WorkflowState
from offload.handle import JobHandle
from offload.runtime.context import JobContext, current_job
from offload.runtime.delivery import Delivery, current_message
from offload.server import asgi
from offload.workflow import Signature, Workflow, chain, chord, group
from offload.workflow_handle import WorkflowHandle

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "App",
    "ArgumentsMismatch",
    "AsyncTask",
    "BackPressure",
    "BackendError",
    "BackendUnavailable",
    "BadEventId",
    "BatchItem",
    "BatchResultMismatch",
    "BulkProgress",
    "Call",
    "ConfigurationError",
    "CrossShard",
    "Delivery",
    "DuplicateJob",
    "ElectionSettingInvalid",
    "Enqueue",
    "Event",
    "EventCursor",
    "ExtraMissing",
    "Forbidden",
    "GroupNotFound",
    "GroupState",
    "IdempotencyConflict",
    "InvalidTransition",
    "InvalidWorkflow",
    "ItemFailed",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobEnded",
    "JobFailed",
    "JobHandle",
    "JobLost",
    "JobNotFound",
    "JobStarted",
    "JobState",
    "Leadership",
    "LeaseLost",
    "Message",
    "Middleware",
    "Misfire",
    "OffloadError",
    "OffsetOutOfRange",
    "OnParentFailure",
    "OutcomeUnknown",
    "Overloaded",
    "ParentFailed",
    "ParentOutcome",
    "ParentResultsTooLarge",
    "PayloadTooLarge",
    "QueueFull",
    "QueueMoved",
    "QueueNotFound",
    "QueueOnTwoShards",
    "QueuePolicy",
    "Rate",
    "RequestRejected",
    "ResultTimeout",
    "RetryPolicy",
    "ScheduleNotFound",
    "ScheduleState",
    "SchemaMismatch",
    "SerializationError",
    "ShardMismatch",
    "Signature",
    "StatsPoint",
    "StorageFull",
    "Task",
    "TopicState",
    "Unauthorized",
    "Unique",
    "UnknownDependency",
    "UnknownShard",
    "UnknownTask",
    "ValidationError",
    "WorkerInfo",
    "Workflow",
    "WorkflowHandle",
    "WorkflowNotFound",
    "WorkflowState",
    "asgi",
    "call",
    "chain",
    "chord",
    "current_job",
    "current_message",
    "group",
]
