"""Workflows: signatures, chains, groups, chords, DAGs and map-reduce.

Each compiles to nodes (one job each) and edges (`offload.core.workflow`) and is stored in
one transaction: all of it or nothing. From then on the database runs it: a node waits in
`waiting` until the transaction that finishes its last parent makes it `available`.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from offload.backends.params import (
    WorkflowInsertParams,
)
from offload.core import serialization
from offload.core.errors import (
    ArgumentsMismatch,
    InvalidWorkflow,
    ValidationError,
    shorten,
)
from offload.core.job import Payload
from offload.core.options import EnqueueOptions, check_count
from offload.core.workflow import Edge, Node, OnParentFailure, Takes
from offload.workflow_handle import WorkflowHandle

if TYPE_CHECKING:
    from offload.app import App
    from offload.core.task import TaskDef

#: Built-in tasks every App registers: one map chunk, and a reducer over a stream.
MAP_TASK = "offload.map"
REDUCE_TASK = "offload.reduce"


class Signature:
    """A task call to make later, as a node of a workflow: `task.s(1, 2)`, `task.si()`,
    or `app.signature("task.name", 1, 2)` for a task the producer does not import.

    `immutable` (`si`): the job ignores its parents' results; otherwise a chain passes the
    parent's result as its first argument, and a chord's callback gets the list of results.
    """

    __slots__ = ("app", "args", "immutable", "kwargs", "options", "task")

    def __init__(
        self,
        app: App,
        task: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        options: EnqueueOptions | None = None,
        immutable: bool = False,
    ) -> None:
        if not isinstance(task, str):
            raise ValidationError(f"a signature's task must be a task name, got {shorten(task)}")
        self.app = app
        self.task = task
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.options = options or EnqueueOptions()
        self.immutable = immutable

    def __repr__(self) -> str:
        marker = "si" if self.immutable else "s"
        return f"<Signature {self.task}.{marker}{self.args!r}>"

    def set(self, **options: Any) -> Signature:
        """The same call with options as for `Task.options` (queue, priority, delay, at,
        max_attempts, meta, channel, depends_on, on_parent_failure)."""
        from offload.task import Task

        task: Task[..., Any] = Task(self.app, self.app.registry.get(self.task), self.options)
        over = task.options(**options)._overrides
        return Signature(
            self.app, self.task, self.args, self.kwargs, options=over, immutable=self.immutable
        )

    def enqueue(self, *, conn: Any = None, name: str | None = None) -> WorkflowHandle:
        """Store this call as a workflow of one node."""
        return chain(self).enqueue(conn=conn, name=name)


class Canvas:
    """What a workflow is built from: a chain, group, chord, `Workflow` or map-reduce."""

    kind = "workflow"

    def enqueue(self, *, conn: Any = None, name: str | None = None) -> WorkflowHandle:
        """Store every job of the workflow in one transaction (`conn`: the caller's), or
        none: a bad node raises a ValidationError naming it and stores nothing."""
        builder = _Builder(self._app())
        self._build(builder, "")
        return builder.store(self.kind, name, conn)

    def _app(self) -> App:
        raise NotImplementedError

    def _build(self, b: _Builder, prefix: str) -> tuple[list[int], list[int]]:
        """Add this part's nodes and edges; return its entry and exit nodes."""
        raise NotImplementedError


Part = Signature | Canvas


def _app_of(parts: Sequence[Part]) -> App:
    for part in parts:
        if isinstance(part, Signature):
            return part.app
        return part._app()
    raise InvalidWorkflow("a workflow needs at least one task")


def _check_parts(kind: str, parts: Sequence[Any]) -> tuple[Part, ...]:
    if not parts:
        raise InvalidWorkflow(f"{kind}() needs at least one signature")
    for index, part in enumerate(parts):
        if not isinstance(part, Signature | Canvas):
            raise InvalidWorkflow(
                f"{kind}() part {index} is {shorten(part)}, not a signature (task.s(...)) "
                "or a chain, group or chord"
            )
    return tuple(parts)


class Chain(Canvas):
    """Parts run one after another; each takes its predecessor's result as its first
    argument (a group's as a list), unless made with `si`."""

    kind = "chain"

    def __init__(self, *parts: Part) -> None:
        self.parts = _check_parts("chain", parts)

    def _app(self) -> App:
        return _app_of(self.parts)

    def _build(self, b: _Builder, prefix: str) -> tuple[list[int], list[int]]:
        entries: list[int] = []
        exits: list[int] = []
        many = False
        for index, part in enumerate(self.parts):
            first, last = part_build(part, b, f"{prefix}{index}")
            if index == 0:
                entries = first
            else:
                for child in first:
                    b.link(child, exits, Takes.ALL if many else Takes.ONE)
            exits, many = last, isinstance(part, Group) or len(last) > 1
        return entries, exits


class Group(Canvas):
    """Parts run in parallel (fan-out)."""

    kind = "group"

    def __init__(self, *parts: Part) -> None:
        self.parts = _check_parts("group", parts)

    def _app(self) -> App:
        return _app_of(self.parts)

    def _build(self, b: _Builder, prefix: str) -> tuple[list[int], list[int]]:
        entries: list[int] = []
        exits: list[int] = []
        for index, part in enumerate(self.parts):
            first, last = part_build(part, b, f"{prefix}{index}")
            entries += first
            exits += last
        return entries, exits


class Chord(Canvas):
    """A group, then `callback` once every member is over, with the list of their
    results (in the group's order) as its first argument (fan-in)."""

    kind = "chord"

    def __init__(self, header: Group | Sequence[Part], callback: Part) -> None:
        self.header = header if isinstance(header, Group) else Group(*header)
        self.callback = _check_parts("chord", [callback])[0]

    def _app(self) -> App:
        return self.header._app()

    def _build(self, b: _Builder, prefix: str) -> tuple[list[int], list[int]]:
        entries, exits = self.header._build(b, f"{prefix}header.")
        first, last = part_build(self.callback, b, f"{prefix}callback")
        for child in first:
            b.link(child, exits, Takes.ALL)
        return entries, last


class Workflow(Canvas):
    """Any DAG of named nodes: `wf.add("resize", resize.s(photo), after=["fetch"])`.

    A node starts once every node it comes after is over; it reads their results with
    `offload.current_job().parent_results()` (by node name). Names may be added in any
    order; a missing name or a cycle is refused at enqueue, naming it.
    """

    kind = "workflow"

    def __init__(self) -> None:
        self._nodes: dict[str, tuple[Signature, tuple[str, ...], OnParentFailure]] = {}

    def add(
        self,
        name: str,
        signature: Signature,
        *,
        after: Iterable[str] = (),
        on_parent_failure: OnParentFailure | str = OnParentFailure.FAIL,
    ) -> Workflow:
        """Add node `name` running `signature` after the nodes named in `after`."""
        if not isinstance(name, str) or not name or len(name) > 255:
            raise InvalidWorkflow(f"a node name must be 1 to 255 characters, got {shorten(name)}")
        if name in self._nodes:
            raise InvalidWorkflow("the name is already used", name)
        if not isinstance(signature, Signature):
            raise InvalidWorkflow(
                f"a node runs a signature (task.s(...)), got {shorten(signature)}", name
            )
        if isinstance(after, str):
            raise InvalidWorkflow("after= takes a list of node names, not one string", name)
        parents = tuple(after)
        for parent in parents:
            if not isinstance(parent, str):
                raise InvalidWorkflow(f"after= names nodes by str, got {shorten(parent)}", name)
        self._nodes[name] = (signature, parents, check_rule(on_parent_failure))
        return self

    def _app(self) -> App:
        return _app_of([sig for sig, _, _ in self._nodes.values()])

    def _build(self, b: _Builder, prefix: str) -> tuple[list[int], list[int]]:
        order = self._order()
        index: dict[str, int] = {}
        for name in order:
            signature, parents, rule = self._nodes[name]
            index[name] = node = b.node(f"{prefix}{name}", signature, Takes.NOTHING)
            for parent in parents:
                b.edge(node, index[parent], rule)
        used = {parent for _, parents, _ in self._nodes.values() for parent in parents}
        entries = [index[name] for name in order if not self._nodes[name][1]]
        return entries, [index[name] for name in order if name not in used]

    def _order(self) -> list[str]:
        """The node names, parents before children; InvalidWorkflow on a missing name or
        a cycle (naming a node on it)."""
        for name, (_, parents, _) in self._nodes.items():
            for parent in parents:
                if parent not in self._nodes:
                    raise InvalidWorkflow(f"after= names {parent!r}, which is no node", name)
                if parent == name:
                    raise InvalidWorkflow("the node comes after itself", name)
        order: list[str] = []
        state: dict[str, int] = {}  # 1: being visited, 2: done
        for root in self._nodes:
            if state.get(root) == 2:
                continue
            stack: list[tuple[str, Iterator[str]]] = [(root, iter(self._nodes[root][1]))]
            state[root] = 1
            while stack:
                name, pending = stack[-1]
                up = next(pending, None)
                if up is None:
                    stack.pop()
                    state[name] = 2
                    order.append(name)
                elif state.get(up) == 1:
                    raise InvalidWorkflow(f"the nodes form a cycle through {up!r}", name)
                elif up not in state:
                    state[up] = 1
                    stack.append((up, iter(self._nodes[up][1])))
        if not order:
            raise InvalidWorkflow("a workflow needs at least one node")
        return order


class MapReduce(Canvas):
    """`app.map(task, items)`: `task(item)` for every item, run in chunks of `chunk_size`
    items over the worker pool; with `.reduce(reducer)`, `reducer(results)` once, where
    `results` is an iterator over every result in item order, read from the database as
    it is consumed. With `combine`, each chunk's results are first reduced where they were
    made (`combine(list_of_results)`), and the reducer iterates those instead."""

    kind = "map"

    def __init__(
        self,
        app: App,
        task: str,
        items: Iterable[Any],
        chunk_size: int,
        *,
        combine: str | None = None,
        reducer: str | None = None,
    ) -> None:
        check_count("chunk_size", chunk_size, ValidationError)
        if isinstance(items, str | bytes | dict) or not isinstance(items, Iterable):
            raise ValidationError(f"items must be an iterable of items, got {shorten(items)}")
        self.app, self.task, self.items = app, task, items
        self.chunk_size, self.combine, self.reducer = chunk_size, combine, reducer

    def reduce(self, task: Any) -> MapReduce:
        """The same map, then `task(results)` once over all of its results."""
        name = task_name(self.app, task)
        return MapReduce(
            self.app, self.task, self.items, self.chunk_size, combine=self.combine, reducer=name
        )

    def _app(self) -> App:
        return self.app

    def _build(self, b: _Builder, prefix: str) -> tuple[list[int], list[int]]:
        mapped = self.app.registry.get(self.task)  # UnknownTask before any chunk is built
        if mapped.options.batch is not None:
            raise InvalidWorkflow(f"{mapped.name} is a batch task: map() runs plain tasks", "map")
        takes_one(mapped, "map", "an item")
        if self.combine is not None:
            takes_one(self.app.registry.get(self.combine), "combine", "a list of results")
        if self.reducer is not None:
            takes_one(self.app.registry.get(self.reducer), "reduce", "an iterator of results")
        over = _options_of(mapped)
        chunks: list[int] = []
        items = iter(self.items)
        while chunk := list(itertools.islice(items, self.chunk_size)):
            args = (self.task, chunk, self.combine)
            call = Signature(self.app, MAP_TASK, args, None, options=over, immutable=True)
            chunks.append(b.node(f"{prefix}map.{len(chunks)}", call, Takes.NOTHING))
        if not chunks:
            raise InvalidWorkflow("map() was given no items")
        if self.reducer is None:
            return chunks, chunks
        over = _options_of(self.app.registry.get(self.reducer))
        flat = self.combine is None
        call = Signature(self.app, REDUCE_TASK, (self.reducer, flat), None, options=over)
        node = b.node(f"{prefix}reduce", call, Takes.STREAM)
        for mapper in chunks:
            b.edge(node, mapper, OnParentFailure.FAIL)
        return chunks, [node]


def _options_of(definition: TaskDef) -> EnqueueOptions:
    """The options a map's chunk or reducer job takes from the task it runs: its queue,
    priority and attempts (its limits and timeouts apply to jobs of that task only)."""
    opts = definition.options
    return EnqueueOptions(
        queue=opts.queue, priority=opts.priority, max_attempts=opts.retry.max_attempts
    )


def chain(*parts: Part) -> Chain:
    """`chain(a.s(1), b.s(), c.s())`: run in turn, each taking the previous result."""
    return Chain(*parts)


def group(*parts: Part) -> Group:
    """`group(a.s(1), a.s(2))`: run in parallel."""
    return Group(*parts)


def chord(header: Group | Sequence[Part], callback: Part) -> Chord:
    """`chord(group(...), callback.s())`: the callback gets the list of the group's results."""
    return Chord(header, callback)


def part_build(part: Part, b: _Builder, name: str) -> tuple[list[int], list[int]]:
    """Add a signature (one node named `name`) or a canvas (its nodes under `name.`)."""
    if isinstance(part, Signature):
        node = b.node(name, part, Takes.NOTHING)
        return [node], [node]
    return part._build(b, f"{name}.")


def takes_one(definition: TaskDef, role: str, what: str) -> None:
    """InvalidWorkflow unless the task can be called with one argument, `what`."""
    reason = definition.mismatch([None], {})
    if reason is not None:
        raise InvalidWorkflow(f"{definition.name} cannot take {what}: {reason}", role)


def check_rule(value: OnParentFailure | str) -> OnParentFailure:
    """An `on_parent_failure` value, or a ValidationError naming the allowed ones."""
    try:
        return OnParentFailure(value)
    except ValueError:
        allowed = ", ".join(repr(rule.value) for rule in OnParentFailure)
        raise ValidationError(
            f"on_parent_failure must be one of {allowed}, got {shorten(value)}"
        ) from None


def task_name(app: App, task: Any) -> str:
    """The registered name of a Task or of a task name (UnknownTask if not registered)."""
    name = task if isinstance(task, str) else getattr(task, "name", None)
    if not isinstance(name, str):
        raise ValidationError(f"expected a task or a task name, got {shorten(task)}")
    return app.registry.get(name).name


#: The job options a node of `from_nodes` may carry besides its name, task, arguments,
#: parents and rule (those of `Task.options` that a workflow's node takes).
NODE_OPTIONS = ("queue", "priority", "delay", "at", "max_attempts", "meta", "channel", "depends_on")


def from_nodes(app: App, nodes: Sequence[Mapping[str, Any]]) -> Workflow:
    """A `Workflow` from plain node descriptions, as JSON gives them (an HTTP producer
    needs no Python): each `{"name", "task", "args", "kwargs", "after",
    "on_parent_failure"}` and any option of `Task.options` (queue, priority, ...)."""
    if isinstance(nodes, str | bytes | Mapping) or not isinstance(nodes, Sequence):
        raise InvalidWorkflow(f"nodes must be a list of nodes, got {shorten(nodes)}")
    built = Workflow()
    for index, node in enumerate(nodes):
        if not isinstance(node, Mapping):
            raise InvalidWorkflow(f"node {index} is {shorten(node)}, not a mapping")
        given = dict(node)
        name = given.pop("name", None)
        task, args, kwargs = given.pop("task", None), given.pop("args", []), given.pop("kwargs", {})
        after = given.pop("after", [])
        rule = given.pop("on_parent_failure", OnParentFailure.FAIL)
        if not isinstance(task, str):
            raise InvalidWorkflow(f"a node's task must be a task name, got {shorten(task)}", name)
        if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
            raise InvalidWorkflow("args must be a list and kwargs a mapping", name)
        for key in given:
            if key not in NODE_OPTIONS:
                close = difflib.get_close_matches(str(key), NODE_OPTIONS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise InvalidWorkflow(f"a node takes no option {shorten(key)}{hint}", name)
        signature = Signature(app, task, args, kwargs)
        signature = signature.set(**given) if given else signature
        built.add(name, signature, after=after, on_parent_failure=rule)
    return built


class _Builder:
    """Collects a workflow's nodes and edges, then checks and stores them at once."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.calls: list[tuple[str, Signature, Takes]] = []
        self.edges: list[Edge] = []
        self.names: set[str] = set()

    def node(self, name: str, signature: Signature, takes: Takes) -> int:
        if name in self.names:
            raise InvalidWorkflow("the name is used twice", name)
        self.names.add(name)
        self.calls.append((name, signature, takes))
        node = len(self.calls) - 1
        over = signature.options
        for parent in over.depends_on:
            self.edges.append(Edge(node, parent_id=parent, on_failure=over.on_parent_failure))
        return node

    def edge(self, child: int, parent: int, rule: OnParentFailure) -> None:
        self.edges.append(Edge(child, parent=parent, on_failure=rule))

    def link(self, child: int, parents: list[int], takes: Takes) -> None:
        """`child` waits for `parents` and, unless immutable, takes their results."""
        name, signature, _ = self.calls[child]
        self.calls[child] = (name, signature, Takes.NOTHING if signature.immutable else takes)
        rule = signature.options.on_parent_failure
        for parent in parents:
            self.edge(child, parent, rule)

    def store(self, kind: str, name: str | None, conn: Any) -> WorkflowHandle:
        if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 255):
            raise ValidationError(f"a workflow name must be 1 to 255 characters, got {name!r}")
        nodes = [self._compile(*call) for call in self.calls]
        params = WorkflowInsertParams(kind, nodes, self.edges, name, conn)
        done = self.app._insert_workflow(params)
        assert done.workflow_id is not None
        ids = {node.name: job_id for node, job_id in zip(nodes, done.ids, strict=True)}
        return WorkflowHandle(self.app.backend, done.workflow_id, ids)

    def _compile(self, name: str, signature: Signature, takes: Takes) -> Node:
        """One node's job, checked: a known task, arguments it can take (with its parents'
        results first when it takes them), JSON arguments, and no keys."""
        app = self.app
        definition = app.registry.get(signature.task)
        over = signature.options
        if over.unique or over.idempotency_key is not None or over.replace is not None:
            raise InvalidWorkflow(
                "workflow nodes take no unique, idempotency_key or replace option", name
            )
        if definition.options.unique is not None and over.unique is not False:
            over = _without_unique(over)
        args, kwargs = list(signature.args), signature.kwargs
        skip = 0 if takes in (Takes.NOTHING, Takes.STREAM) else 1  # the parents' results
        try:
            if definition.models:
                prepared, kwargs = definition.prepare(args, kwargs, skip)
                args = list(prepared)
            args_text, kwargs_text = serialization.dumps_args(args, kwargs, limit=app.payload_limit)
        except ValidationError as exc:
            raise InvalidWorkflow(str(exc), name) from exc
        given = args if skip == 0 else [None, *args]
        try:
            definition.check_args(given, kwargs)
        except ArgumentsMismatch as exc:
            if takes in (Takes.ONE, Takes.ALL):
                what = "its parent's result" if takes is Takes.ONE else "the list of results"
                reason = f"{definition.name} cannot take {what} as its first argument: "
                raise InvalidWorkflow(reason + exc.reason, name) from exc
            raise InvalidWorkflow(str(exc), name) from exc
        spec = definition.spec(over, app.idempotency_retention)
        payload = Payload(
            args_text,
            kwargs_text,
            limit_key=definition.limit_key(args, kwargs),
            group_key=definition.group_key(args, kwargs),
        )
        return Node(name, spec, payload, takes)


def _without_unique(over: EnqueueOptions) -> EnqueueOptions:
    """`over` with the task's unique rule dropped: a node is stored once, as its workflow."""
    from dataclasses import replace

    return replace(over, unique=False)


__all__ = [
    "MAP_TASK",
    "NODE_OPTIONS",
    "REDUCE_TASK",
    "Canvas",
    "Chain",
    "Chord",
    "Group",
    "MapReduce",
    "Signature",
    "Workflow",
    "chain",
    "chord",
    "from_nodes",
    "group",
]
