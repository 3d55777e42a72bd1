"""The workflows area: jobs that wait for jobs (`offload.core.workflow`), over a backend's
`workflows.sql`.

A waiting job counts its parents not yet over (`pending`, on its own row). Every statement
that ends jobs (an outcome, a rescue, a cancel, a supersede) returns whether others wait
for them (`children > 0`), and for those calls `released` in its own transaction: their
unresolved edges take their states, once, and the waiting children are counted down,
released, or ended by their edges' rules, cascading to their own children. Nothing is
decided from memory: each step is a statement under the rows' locks.

A child ended by a rule (dead, cancelled) and retried by hand runs, whatever its parents:
its edges stay resolved, and `pending` keeps the count it had.
"""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from offload.backends.params import (
    ParentsRead,
    ParentsReadParams,
    ResultsPageParams,
    WorkflowInserted,
    WorkflowInsertParams,
    WorkflowListParams,
    WorkflowNode,
    WorkflowRecord,
    WorkflowSummary,
)
from offload.backends.sql.rows import Columns, cells
from offload.core.errors import InvalidWorkflow, ParentFailed, UnknownDependency, WorkflowNotFound
from offload.core.flow import DEFAULT_AGING
from offload.core.job import JobSpec
from offload.core.records import JobChange
from offload.core.states import FINISHED, JobState
from offload.core.workflow import Edge, Node, OnParentFailure, ParentOutcome

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend

#: Ids are 64-bit integers (see `offload.backends.sql.jobs`).
_ID_MIN, _ID_MAX = -(2**63), 2**63 - 1
#: What a rule does to a waiting child whose parent ended badly (no entry: nothing).
_VERDICTS = {OnParentFailure.FAIL: JobState.DEAD, OnParentFailure.CANCEL: JobState.CANCELLED}
_BAD_ENDS = frozenset({JobState.DEAD, JobState.CANCELLED})


class SqlWorkflows:
    """`WorkflowStore` over a backend's `workflows.sql`, and the release step that every
    statement ending jobs runs."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["workflows"]

    # -- release ----------------------------------------------------------------------

    def released(self, cur: Any, ended: Collection[int]) -> None:
        """In `cur`'s transaction, after jobs `ended` were ended (only those others wait
        for need passing): resolve their edges and count their waiting children down;
        children ended by a rule (dead, cancelled) are ended jobs in turn, until none is.
        Ids of jobs not over (a running job asked to stop) resolve nothing."""
        ids = sorted(ended)
        while ids:
            cur.execute(self.q["resolve"], {"ids": _json(ids)})
            rows = cur.fetchall()
            if not rows:
                return
            names = ("child_id", "position", "parent_id", "on_failure", "outcome")
            edges = sorted(cells(cur, rows, *names))
            ids = self._count_down(cur, edges)

    def _count_down(self, cur: Any, edges: list[tuple[Any, ...]]) -> list[int]:
        """Count each child down by its edges just resolved (in child, position order); the
        first edge whose rule ends it decides how. Returns the children ended that others
        wait for."""
        counts: Counter[int] = Counter()
        verdicts: dict[int, tuple[JobState, int, JobState]] = {}
        for child_id, _, parent, rule, outcome in edges:
            child, state = int(child_id), JobState(outcome)
            counts[child] += 1
            verdict = _VERDICTS.get(OnParentFailure(rule))
            if verdict is not None and state in _BAD_ENDS and child not in verdicts:
                verdicts[child] = (verdict, int(parent), state)
        names = self._node_names(
            cur, [p for verdict, p, _ in verdicts.values() if verdict is JobState.DEAD]
        )
        children = []
        for child, n in counts.items():
            verdict, message = None, None
            if child in verdicts:
                verdict, parent, state = verdicts[child]
                if verdict is JobState.DEAD:
                    message = str(ParentFailed(parent, names.get(parent), str(state)))
            children.append((child, n, verdict, message))
        cur.execute(self.q["count_down"], {"children": _json(children)})
        rows = cur.fetchall()
        woken, released, over, ended = set(), [], [], []
        for job_id, queue, state, waited_for in cells(
            cur, rows, "id", "queue", "state", "has_children"
        ):
            if state == JobState.AVAILABLE:
                woken.add(str(queue))
            if state in (JobState.AVAILABLE, JobState.SCHEDULED):
                released.append(int(job_id))
            elif state in FINISHED:
                over.append(int(job_id))
                if waited_for:
                    ended.append(int(job_id))
        self.db.events.written(cur, released, "released")
        self.db.events.written(cur, over)
        if woken:
            self.db.wake(cur, woken)
        return ended

    def _node_names(self, cur: Any, ids: list[int]) -> dict[int, str | None]:
        """The node names of jobs `ids`, for the errors naming them."""
        if not ids:
            return {}
        cur.execute(self.q["nodes"], {"ids": _json(ids)})
        rows = cur.fetchall()
        return {int(i): name for i, name in cells(cur, rows, "id", "node")}

    # -- insert -----------------------------------------------------------------------

    def insert(self, params: WorkflowInsertParams) -> WorkflowInserted:
        nodes, edges = params.nodes, params.edges
        if not nodes:
            raise InvalidWorkflow("no jobs to store")
        _check(nodes, edges)
        with self.db.tx(params.conn) as cur:
            workflow_id = None
            if params.kind is not None:
                cur.execute(self.q["insert_workflow"], {"kind": params.kind, "name": params.name})
                workflow_id = int(cur.fetchone()[0])
            self._admit(cur, nodes)
            ids = self._nodes(cur, workflow_id, nodes, edges)
            over = self._lock_parents(cur, edges)
            rows, positions = [], Counter[int]()
            for edge in edges:
                parent = ids[edge.parent] if edge.parent is not None else edge.parent_id
                rows.append([ids[edge.child], positions[edge.child], parent, str(edge.on_failure)])
                positions[edge.child] += 1
            if rows:
                cur.execute(self.q["insert_edges"], {"edges": _json(rows)})
            if over:  # parents already over: their new edges resolve now
                self.released(cur, over)
            roots = {node.spec.queue for i, node in enumerate(nodes) if not positions[i]}
            if roots:
                self.db.wake(cur, roots)
        return WorkflowInserted(workflow_id, ids)

    def _admit(self, cur: Any, nodes: Sequence[Node]) -> None:
        """Admit the nodes into their queues as an insert of as many jobs (a bound refuses
        the whole workflow: `BackPressure`, nothing stored). Each queue's policy is read
        under its lock, whatever this process's cache says; a node is never stored shed."""
        queues: dict[str, tuple[JobSpec, int]] = {}
        for node in nodes:
            spec, n = queues.get(node.spec.queue, (node.spec, 0))
            queues[node.spec.queue] = (spec, n + 1)
        for spec, n in queues.values():
            self.db.admission.decide(cur, spec, n)

    def _nodes(
        self, cur: Any, workflow_id: int | None, nodes: Sequence[Node], edges: Sequence[Edge]
    ) -> list[int]:
        """Store every node in one statement (each distinct spec sent once); their ids in
        node order."""
        parents, children = Counter[int](), Counter[int]()
        for edge in edges:
            parents[edge.child] += 1
            if edge.parent is not None:
                children[edge.parent] += 1
        specs: dict[JobSpec, int] = {}
        rows = []
        for i, node in enumerate(nodes):
            p = node.payload
            spec = specs.setdefault(node.spec, len(specs))
            rows.append(
                (spec, p.args, p.kwargs, p.limit_key, p.group_key, node.name, str(node.takes),
                 parents[i], children[i])
            )  # fmt: skip
        fields = [
            (s.task, s.queue, s.priority, s.max_attempts, s.delay, s.run_at, s.meta, s.channel)
            for s in specs
        ]
        values = {
            "specs": _json(fields),
            "nodes": _json(rows),
            "workflow_id": workflow_id,
            "default_aging": DEFAULT_AGING,
        }
        cur.execute(self.q["insert_nodes"], values)
        # Ids come from one sequence in node order; RETURNING order is not promised.
        return sorted(int(row[0]) for row in cur.fetchall())

    def _lock_parents(self, cur: Any, edges: Sequence[Edge]) -> list[int]:
        """Count the new edges on the stored jobs they point at, under their row locks;
        raise UnknownDependency for an id no job has. Returns those already over."""
        wanted = Counter(e.parent_id for e in edges if e.parent_id is not None)
        if not wanted:
            return []
        for job_id in wanted:
            if not _ID_MIN <= job_id <= _ID_MAX:
                raise UnknownDependency(job_id)
        cur.execute(self.q["lock_parents"], {"parents": _json(sorted(wanted.items()))})
        rows = cur.fetchall()
        states = {int(i): state for i, state in cells(cur, rows, "id", "state")}
        for job_id in wanted:
            if job_id not in states:
                raise UnknownDependency(job_id)
        return [job_id for job_id, state in states.items() if state in FINISHED]

    # -- reads ------------------------------------------------------------------------

    def parents(self, params: ParentsReadParams) -> dict[int, ParentsRead]:
        ids = [i for i in params.child_ids if _ID_MIN <= i <= _ID_MAX]
        found: dict[int, ParentsRead] = {i: ParentsRead([]) for i in ids}
        if not ids:
            return found
        values = {"ids": _json(ids), "results": params.results, "limit": params.limit}
        with self.db.read() as cur:
            cur.execute(self.q["parents"], values)
            rows = cur.fetchall()
            c = Columns.of(cur) if rows else None
        if c is None:
            return found
        loads = orjson.loads
        for row in rows:
            child, size, result, error = (
                row[c[n]] for n in ("child_id", "size", "result", "error")
            )
            read = found[int(child)]
            if not read.parents:
                too_large = params.limit is not None and int(size) > params.limit
                read = found[int(child)] = ParentsRead([], int(size), too_large)
            read.parents.append(
                ParentOutcome(
                    job_id=int(row[c["parent_id"]]),
                    node=row[c["node"]],
                    state=JobState(row[c["state"]]),
                    result=None if result is None else loads(result),
                    error=None if error is None else loads(error),
                )
            )
        return found

    def results(self, params: ResultsPageParams) -> builtins.list[tuple[int, str | None]]:
        if not _ID_MIN <= params.child_id <= _ID_MAX:
            return []
        values = {"child_id": params.child_id, "after": params.after, "limit": params.limit}
        with self.db.read() as cur:
            cur.execute(self.q["results"], values)
            return [(int(position), result) for position, result in cur.fetchall()]

    def get(self, workflow_id: int) -> WorkflowRecord:
        if not _ID_MIN <= workflow_id <= _ID_MAX:
            raise WorkflowNotFound(workflow_id)
        with self.db.read() as cur:
            cur.execute(self.q["get"], {"id": workflow_id})
            found = cur.fetchone()
            if found is None:
                raise WorkflowNotFound(workflow_id)
            w = dict(zip(Columns.of(cur).index, found, strict=True))
            cur.execute(self.q["nodes_of"], {"id": workflow_id})
            rows = cur.fetchall()
            c = Columns.of(cur) if rows else None
        nodes = []
        for row in rows:
            assert c is not None
            started, finished = row[c["started_at"]], row[c["finished_at"]]
            nodes.append(
                WorkflowNode(
                    job_id=int(row[c["id"]]),
                    name=row[c["node"]],
                    task=row[c["task"]],
                    state=JobState(row[c["state"]]),
                    attempt=int(row[c["attempt"]]),
                    parents=[int(i) for i in orjson.loads(row[c["parent_ids"]])],
                    started_at=None if started is None else self.db.time(started),
                    finished_at=None if finished is None else self.db.time(finished),
                )
            )
        created = self.db.time(w["created_at"])
        return WorkflowRecord(int(w["id"]), w["kind"], w["name"], created, nodes)

    def list(self, params: WorkflowListParams) -> builtins.list[WorkflowSummary]:
        before = params.before_id
        if before is not None and before > _ID_MAX:
            before = None
        values = {"before_id": before, "limit": min(params.limit, _ID_MAX)}
        with self.db.read() as cur:
            cur.execute(self.q["list"], values)
            rows = cur.fetchall()
            c = Columns.of(cur) if rows else None
        found: dict[int, WorkflowSummary] = {}
        for row in rows:
            assert c is not None
            workflow_id = int(row[c["id"]])
            summary = found.get(workflow_id)
            if summary is None:
                summary = found[workflow_id] = WorkflowSummary(
                    workflow_id,
                    row[c["kind"]],
                    row[c["name"]],
                    self.db.time(row[c["created_at"]]),
                    0,
                    {},
                )
            n, state = int(row[c["n"]]), row[c["state"]]
            if state is not None:
                states = dict(summary.states)
                states[JobState(state)] = n
                found[workflow_id] = summary = WorkflowSummary(
                    summary.id, summary.kind, summary.name, summary.created_at,
                    summary.total + n, states,
                )  # fmt: skip
        return list(found.values())

    # -- changes ----------------------------------------------------------------------

    def cancel(self, workflow_id: int) -> builtins.list[JobChange]:
        self.get(workflow_id)  # WorkflowNotFound
        return self.db.jobs.change(self.q["cancel"], {"id": workflow_id})

    def pruned(self, cur: Any) -> None:
        """In a prune's transaction: drop the edges of jobs gone and workflows left empty."""
        cur.execute(self.q["prune_edges"])
        cur.execute(self.q["prune_workflows"])


def _check(nodes: Sequence[Node], edges: Sequence[Edge]) -> None:
    """Refuse what the API never builds: an edge without exactly one parent or naming no
    node, a node with keys (unique, idempotency, replace: no workflow node has them)."""
    for edge in edges:
        if (edge.parent is None) == (edge.parent_id is None):
            raise InvalidWorkflow("an edge needs exactly one of parent and parent_id")
        if not 0 <= edge.child < len(nodes) or not 0 <= (edge.parent or 0) < len(nodes):
            raise InvalidWorkflow("an edge names a node index out of range")
    for node in nodes:
        p = node.payload
        if node.spec.rules is not None or p.unique_key or p.idempotency_key or p.replace_key:
            raise InvalidWorkflow(
                "a workflow's jobs take no unique, idempotency or replace key", node.name
            )


def _json(values: Any) -> str:
    return orjson.dumps(values).decode()
