"""The stored job and the parameters of a new one, as plain values (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, overload

from offload.core.states import JobState


@dataclass(frozen=True, slots=True)
class NewJob:
    """One job to insert; payloads are already-encoded JSON text."""

    task: str
    queue: str
    args: str
    kwargs: str
    priority: int = 0
    max_attempts: int = 3
    #: Seconds from the database's now until the job may run (0 = now).
    delay: float = 0.0
    #: An exact time to run at instead (epoch seconds), e.g. a cron tick.
    run_at: float | None = None
    unique_key: str | None = None
    idempotency_key: str | None = None
    group_key: str | None = None
    meta: str = "{}"


@dataclass(frozen=True, slots=True)
class JobBatch(Sequence[NewJob]):
    """Many new jobs that differ only in their arguments: one template, one payload each.

    It is a sequence of `NewJob` like any other, and lets a backend store the batch with
    one statement whose per-row work is the payload alone (`Task.enqueue_many` makes one).
    """

    template: NewJob
    args: Sequence[str]
    kwargs: Sequence[str]

    def __post_init__(self) -> None:
        if len(self.args) != len(self.kwargs):
            raise ValueError(f"{len(self.args)} args payloads for {len(self.kwargs)} kwargs")

    def __len__(self) -> int:
        return len(self.args)

    @overload
    def __getitem__(self, index: int) -> NewJob: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[NewJob]: ...
    def __getitem__(self, index: int | slice) -> NewJob | Sequence[NewJob]:
        if isinstance(index, slice):
            return JobBatch(self.template, self.args[index], self.kwargs[index])
        return replace(self.template, args=self.args[index], kwargs=self.kwargs[index])


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

    @property
    def last_error(self) -> dict[str, Any] | None:
        """The error of the latest failed attempt, if any."""
        return self.errors[-1] if self.errors else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for the CLI and HTTP faces."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        out["state"] = str(self.state)
        return out
