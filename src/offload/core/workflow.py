"""Jobs that depend on jobs: what a workflow is made of once compiled, and what a child
learns of its parents. Plain values (no I/O); the storage seam is
`offload.backends.params.WorkflowInsertParams`.

A workflow (a chain, group, chord, DAG or map-reduce) compiles to nodes (one job each) and
edges (child waits for parent). A node with parents is stored `waiting`, with a count of
parents still unfinished; the transaction that finishes its last parent makes it
`available` (or `scheduled`), and the one that ends a parent dead or cancelled applies the
edge's `on_parent_failure` rule to it. Nothing about it is held in Python memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from offload.core.job import Job, JobSpec, ParentOutcome, Payload
from offload.core.states import JobState

#: Bytes of JSON a job's parents' results may total when it starts: 16 MiB, beyond which a
#: workflow should pass references (a path, a key) rather than the data.
DEFAULT_PARENT_RESULTS_LIMIT = 16 * 1024 * 1024


class OnParentFailure(StrEnum):
    """What a parent that ended dead or cancelled does to a waiting child."""

    #: The child ends dead, its error naming the parent.
    FAIL = "fail"
    #: The child ends cancelled.
    CANCEL = "cancel"
    #: The child runs once all its parents are over, and can read how each ended.
    RUN = "run"


class Takes(StrEnum):
    """How a child receives its parents' results when it starts (read from the database
    then, not copied at enqueue)."""

    #: Not as arguments: through `offload.current_job().parents()` only.
    NOTHING = "nothing"
    #: The single parent's result as the first argument (a chain's link).
    ONE = "one"
    #: A list of every parent's result, in the edges' order, as the first argument (a
    #: chord's callback).
    ALL = "all"
    #: An iterator over the parents' results, read from the database as it is consumed
    #: (a map-reduce's reducer; each parent's result is a list, flattened in order).
    STREAM = "stream"


@dataclass(frozen=True, slots=True)
class Node:
    """One job of a workflow insert: a named job and how it takes its parents' results."""

    #: Unique within the workflow ("fetch", "resize.0", or a position in a chain).
    name: str
    spec: JobSpec
    payload: Payload
    takes: Takes = Takes.NOTHING


@dataclass(frozen=True, slots=True)
class Edge:
    """Child node waits for a parent: another node of the same insert (`parent`, an index
    into the nodes) or a job already stored (`parent_id`). Exactly one of the two is set.
    A child's edges are kept in the order given: the order of its parents' results."""

    child: int
    parent: int | None = None
    parent_id: int | None = None
    on_failure: OnParentFailure = OnParentFailure.FAIL


def with_parents(job: Job, parents: Sequence[ParentOutcome]) -> Job:
    """The job as it starts: its parents' outcomes attached and, when it takes their
    results as arguments (`Takes.ONE`, `Takes.ALL`), those first. The stored arguments
    stay as enqueued, so a retry folds them again from the same parents."""
    takes = Takes(job.takes)
    args = job.args
    if takes is Takes.ONE:
        args = [parents[0].result if parents else None, *args]
    elif takes is Takes.ALL:
        args = [[parent.result for parent in parents], *args]
    return replace(job, args=args, parent_outcomes=tuple(parents))


class WorkflowState(StrEnum):
    """A workflow's state, derived from its nodes' states."""

    #: Some node is not finished yet.
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    #: Every node is finished and at least one ended dead.
    FAILED = "failed"
    #: Every node is finished, none dead, at least one cancelled.
    CANCELLED = "cancelled"

    @classmethod
    def of(cls, states: Mapping[JobState, int]) -> WorkflowState:
        """The state of a workflow whose nodes are in `states` (state -> count)."""
        if any(n and not state.finished for state, n in states.items()):
            return cls.RUNNING
        if states.get(JobState.DEAD):
            return cls.FAILED
        if states.get(JobState.CANCELLED):
            return cls.CANCELLED
        return cls.SUCCEEDED


__all__ = [
    "DEFAULT_PARENT_RESULTS_LIMIT",
    "Edge",
    "Node",
    "OnParentFailure",
    "ParentOutcome",
    "Takes",
    "WorkflowState",
    "with_parents",
]
