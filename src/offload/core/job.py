"""The stored job and what a new one is made of, as plain values (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, NamedTuple

from offload.core.shaping import KeyRules
from offload.core.states import JobState


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What every job of one insert shares: task, queue, priority, timing and meta.

    Built in one place (`TaskDef.spec`) for every enqueue path; payloads travel apart so a
    batch of ten thousand sends its options once.
    """

    task: str
    queue: str
    priority: int = 0
    max_attempts: int = 3
    #: Seconds from the database's now until the job may run (0 = now).
    delay: float = 0.0
    #: An exact time to run at instead (epoch seconds): `at=`, or a cron tick.
    run_at: float | None = None
    #: Meta as JSON text (an object).
    meta: str = "{}"
    #: How the payloads' unique, idempotency and replace keys are treated; None when no
    #: payload can have one (the plain insert path, one statement).
    rules: KeyRules | None = None
    #: The event channel of the jobs (`offload.core.events`), or None.
    channel: str | None = None


class Payload(NamedTuple):
    """What is each job's own in an insert: its arguments as JSON text, and its keys.

    A tuple, not a dataclass: a batch makes one per job, and a tuple is built in a tenth of
    the time and encodes to JSON as it is.
    """

    args: str = "[]"
    kwargs: str = "{}"
    #: Same key, same job: a second insert with it returns the first job's id.
    idempotency_key: str | None = None
    #: The key its task's per-key limits count it under ("" for a task limited as a whole,
    #: None for a task without limits).
    limit_key: str | None = None
    #: While a job with this key holds it (in the states and period its spec names), an
    #: enqueue with the same key stores nothing and answers with that job.
    unique_key: str | None = None
    #: A batch task's group: its worker takes queued jobs of one group together.
    group_key: str | None = None
    #: Queued jobs carrying this key are cancelled when this one is stored (supersede).
    replace_key: str | None = None


@dataclass(frozen=True, slots=True)
class ParentOutcome:
    """How one parent of a running job ended, read when the job starts."""

    job_id: int
    #: The parent's node name, or None for a job that belongs to no workflow.
    node: str | None
    state: JobState
    #: The decoded result (None unless it succeeded).
    result: Any
    #: The error of its last failed attempt, if any.
    error: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ParentOutcome:
        """The value of its JSON object (as orjson encodes the dataclass)."""
        return cls(
            int(data["job_id"]), data["node"], JobState(data["state"]), data["result"],
            data.get("error"),
        )  # fmt: skip

    @property
    def key(self) -> str:
        """How `parent_results()` names it: the node name, else the job id as text."""
        return self.node if self.node is not None else str(self.job_id)


@dataclass(frozen=True, slots=True)
class Job:
    """A job as stored: one row of the jobs table, decoded."""

    id: int
    task: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int
    state: JobState
    attempt: int
    max_attempts: int
    run_at: datetime
    enqueued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_until: datetime | None
    worker: str | None
    result: Any
    errors: list[dict[str, Any]] = field(default_factory=list)
    unique_key: str | None = None
    idempotency_key: str | None = None
    group_key: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: The latest {"fraction", "message"} the running task reported, if any.
    progress: dict[str, Any] | None = None
    #: True once a cancel was asked for while the job was running.
    cancel_requested: bool = False
    #: Storing a job with this key cancels queued jobs carrying it.
    replace_key: str | None = None
    #: The job whose `replace_key` cancelled this one.
    superseded_by: int | None = None
    #: The event channel its changes are also published on (e.g. "user:42").
    channel: str | None = None
    #: The workflow it is a node of, and its node name there (`offload.core.workflow`).
    workflow_id: int | None = None
    node: str | None = None
    #: How many jobs it waits for (its edges), and how it takes their results (a `Takes`
    #: value): a worker reads them when it starts the job.
    parents: int = 0
    takes: str = "nothing"
    #: How each parent ended, read by the worker as it starts the job (not a column).
    parent_outcomes: tuple[ParentOutcome, ...] = ()

    @property
    def last_error(self) -> dict[str, Any] | None:
        """The error of the latest failed attempt, if any."""
        return self.errors[-1] if self.errors else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for the CLI and HTTP faces."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            if name == "parent_outcomes":
                continue  # the worker's, not the stored job's
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        out["state"] = str(self.state)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """The job of a `to_dict` view (the HTTP API's answer). Keys it does not know are
        ignored, so a client reads the answers of a newer server."""
        values: dict[str, Any] = {}
        for spec in fields(cls):
            if spec.name not in data:
                continue
            value = data[spec.name]
            if spec.name == "state":
                value = JobState(value)
            elif value is not None and "datetime" in str(spec.type):
                value = datetime.fromisoformat(value)
            values[spec.name] = value
        return cls(**values)
