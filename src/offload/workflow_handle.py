"""What a stored workflow looks like from Python: `WorkflowHandle` (an enqueue's answer),
the views the faces print (`WorkflowStatus`, `WorkflowProgress`), and the stream a map's
reducer reads its results from."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from offload.backends.params import (
    ResultsPageParams,
    WorkflowNode,
    WorkflowRecord,
    WorkflowSummary,
)
from offload.core.errors import JobFailed, ResultTimeout
from offload.core.records import JobChange
from offload.core.states import JobState
from offload.core.workflow import WorkflowState
from offload.handle import JobHandle

if TYPE_CHECKING:
    from offload.backends.base import Backend

#: Chunk results a reducer's stream holds at once: each can be a chunk of results.
_STREAM_PAGE = 4


class WorkflowHandle:
    """A stored workflow by id: its nodes' jobs, its state and results; every method reads
    the database afresh."""

    __slots__ = ("_backend", "id", "nodes")

    def __init__(self, backend: Backend, workflow_id: int, ids: dict[str, int]) -> None:
        self._backend = backend
        self.id = workflow_id
        #: Each node's job, by node name.
        self.nodes: dict[str, JobHandle[Any]] = {
            name: JobHandle(backend, job_id) for name, job_id in ids.items()
        }

    def __repr__(self) -> str:
        return f"WorkflowHandle(id={self.id}, nodes={len(self.nodes)})"

    def record(self) -> WorkflowRecord:
        """The stored workflow with every node's state; WorkflowNotFound once pruned."""
        return self._backend.workflows.get(self.id)

    def status(self) -> WorkflowState:
        """The workflow's state: running until every node is over."""
        return state_of(self.record())

    def wait(self, timeout: float | None = None) -> WorkflowRecord:
        """Block until every node is over; return the workflow (ResultTimeout past
        `timeout` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.005
        while True:
            record = self.record()
            state = state_of(record)
            if state is not WorkflowState.RUNNING:
                return record
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeout(self.id, timeout or 0.0, str(state), what="workflow")
            time.sleep(pause if deadline is None else min(pause, deadline - time.monotonic()))
            pause = min(pause * 1.5, 0.25)

    def results(self, timeout: float | None = None) -> dict[str, Any]:
        """Once every node is over, each succeeded node's result by node name."""
        record = self.wait(timeout)
        return {
            node.name: self._backend.jobs.get(node.job_id).result
            for node in record.nodes
            if node.state is JobState.SUCCEEDED
        }

    def result(self, timeout: float | None = None) -> Any:
        """The result of the workflow's last node (a list, in node order, when it ends in
        several: a group); JobFailed if one of those did not succeed."""
        record = self.wait(timeout)
        values = []
        for node in leaves(record):
            job = self._backend.jobs.get(node.job_id)
            if job.state is not JobState.SUCCEEDED:
                raise JobFailed(job.id, str(job.state), job.last_error)
            values.append(job.result)
        return values[0] if len(values) == 1 else values

    def cancel(self) -> list[JobChange]:
        """Cancel every unfinished node (a running one is asked to stop)."""
        return self._backend.workflows.cancel(self.id)


def state_of(record: WorkflowRecord) -> WorkflowState:
    """A stored workflow's state, from its nodes' states."""
    return WorkflowState.of(Counter(node.state for node in record.nodes))


def leaves(record: WorkflowRecord) -> list[WorkflowNode]:
    """The nodes no other node waits for: where the workflow ends."""
    waited = {parent for node in record.nodes for parent in node.parents}
    return [node for node in record.nodes if node.job_id not in waited]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowStatus(WorkflowRecord):
    """A stored workflow as faces show it: its record, its state, and how many of its
    nodes are in each state (`App.workflow_status`)."""

    state: WorkflowState
    counts: dict[JobState, int]

    @classmethod
    def of(cls, record: WorkflowRecord) -> WorkflowStatus:
        """The status of a stored workflow, derived from its nodes' states."""
        counts = Counter(node.state for node in record.nodes)
        values = {f.name: getattr(record, f.name) for f in fields(record)}
        return cls(**values, state=WorkflowState.of(counts), counts=dict(counts))

    @property
    def total(self) -> int:
        """How many nodes it has."""
        return len(self.nodes)

    @property
    def finished(self) -> int:
        """How many of its nodes are finished, in any way."""
        return _finished(self.counts)

    def to_json(self) -> dict[str, Any]:
        """The JSON view the CLI and the HTTP API show: each node with the job ids it
        waits for (`parents`) and the names of those in the workflow (`after`)."""
        names = {node.job_id: node.name for node in self.nodes}
        return {
            **_heading(self, self.counts),
            "nodes": [
                {
                    "job_id": node.job_id,
                    "name": node.name,
                    "task": node.task,
                    "state": str(node.state),
                    "attempt": node.attempt,
                    "parents": node.parents,
                    "after": [names[p] for p in node.parents if p in names],
                    "started_at": _moment(node.started_at),
                    "finished_at": _moment(node.finished_at),
                }
                for node in self.nodes
            ],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowProgress(WorkflowSummary):
    """A workflow in a listing as faces show it: its summary and its state
    (`App.workflow_statuses`)."""

    state: WorkflowState

    @classmethod
    def of(cls, summary: WorkflowSummary) -> WorkflowProgress:
        """The progress of a listed workflow, derived from its nodes' states."""
        values = {f.name: getattr(summary, f.name) for f in fields(summary)}
        return cls(**values, state=WorkflowState.of(summary.states))

    @property
    def finished(self) -> int:
        """How many of its nodes are finished, in any way."""
        return _finished(self.states)

    def to_json(self) -> dict[str, Any]:
        """The JSON view the CLI and the HTTP API show."""
        return _heading(self, self.states)


def _finished(counts: Mapping[JobState, int]) -> int:
    """How many nodes are finished (succeeded, dead, cancelled or shed), of `counts`."""
    return sum(n for state, n in counts.items() if state.finished)


def _heading(
    workflow: WorkflowStatus | WorkflowProgress, counts: Mapping[JobState, int]
) -> dict[str, Any]:
    """What a workflow's views share: what it is, its state, and its progress (`finished`
    of `total` nodes; `counts`: nodes per state, only the states some node is in)."""
    return {
        "id": workflow.id,
        "kind": workflow.kind,
        "name": workflow.name,
        "created_at": workflow.created_at.isoformat(),
        "state": str(workflow.state),
        "total": workflow.total,
        "finished": workflow.finished,
        "counts": {str(s): n for s in JobState if (n := counts.get(s, 0))},
    }


def _moment(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


class ResultStream(Iterator[Any]):
    """A reducer's input: its parents' results in order, read a few at a time (each a
    chunk's list of results, flattened when `flat`)."""

    def __init__(self, backend: Backend, job_id: int, flat: bool) -> None:
        self._backend, self._job_id, self._flat = backend, job_id, flat
        self._pages = self._read()

    def __next__(self) -> Any:
        return next(self._pages)

    def _read(self) -> Iterator[Any]:
        after = -1
        while True:
            page = self._backend.workflows.results(
                ResultsPageParams(self._job_id, after, _STREAM_PAGE)
            )
            if not page:
                return
            for position, text in page:
                after = position
                value = None if text is None else orjson.loads(text)
                if self._flat:
                    yield from value or ()
                else:
                    yield value


__all__ = ["ResultStream", "WorkflowHandle", "WorkflowProgress", "WorkflowStatus"]
