"""Workflows through the Python API, on both backends, run by a burst worker in this
process: results flow between jobs as each canvas promises, rules for failed parents
hold, and bad input stores nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import offload
from offload.core.states import JobState


@pytest.fixture
def wf(app: offload.App) -> offload.App:
    """`app` with the tasks these tests compose."""

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="double")
    def double(n: int) -> int:
        return 2 * n

    @app.task(name="total")
    def total(values: list[int]) -> int:
        return sum(values)

    @app.task(name="const")
    def const(value: Any) -> Any:
        return value

    @app.task(name="boom", max_attempts=1)
    def boom() -> None:
        raise RuntimeError("boom")

    @app.task(name="seen")
    def seen() -> dict[str, Any]:
        job = offload.current_job()
        return {
            "results": job.parent_results(),
            "states": [str(p.state) for p in job.parents()],
        }

    @app.task(name="words")
    def words(line: str) -> dict[str, int]:
        return dict(Counter(line.split()))

    @app.task(name="merge")
    def merge(counts: Iterator[dict[str, int]]) -> dict[str, int]:
        out: Counter[str] = Counter()
        for part in counts:
            out.update(part)
        return dict(out)

    @app.task(name="combine")
    def combine(parts: list[dict[str, int]]) -> dict[str, int]:
        out: Counter[str] = Counter()
        for part in parts:
            out.update(part)
        return dict(out)

    return app


def run(app: offload.App) -> None:
    """Run every due job, then return."""
    worker = app.worker(executor="thread", burst=True, install_signals=False, concurrency=2)
    assert worker.run() == 0


def task(app: offload.App, name: str) -> offload.Task[..., Any]:
    return offload.Task(app, app.registry.get(name), offload.core.options.EnqueueOptions())


def jobs_stored(app: offload.App) -> int:
    return sum(sum(states.values()) for states in app.queue_counts().values())


def test_a_chain_passes_each_result_to_the_next(wf: offload.App) -> None:
    add, double = task(wf, "add"), task(wf, "double")
    handle = offload.chain(add.s(1, 2), double.s(), double.s()).enqueue()
    assert isinstance(handle, offload.WorkflowHandle)
    assert handle.status() is offload.WorkflowState.RUNNING
    run(wf)
    assert handle.result(timeout=5) == 12
    assert handle.status() is offload.WorkflowState.SUCCEEDED
    assert handle.results() == {"0": 3, "1": 6, "2": 12}


def test_si_ignores_the_parent_result(wf: offload.App) -> None:
    add, const = task(wf, "add"), task(wf, "const")
    handle = offload.chain(add.s(1, 2), const.si("fixed")).enqueue()
    run(wf)
    assert handle.result(timeout=5) == "fixed"


def test_a_chord_callback_gets_the_group_results_in_order(wf: offload.App) -> None:
    double, total, const = task(wf, "double"), task(wf, "total"), task(wf, "const")
    members = [double.s(n) for n in range(10)]
    handle = offload.chord(offload.group(*members), const.s()).enqueue()
    run(wf)
    assert handle.result(timeout=5) == [2 * n for n in range(10)]
    summed = offload.chord(offload.group(*members), total.s()).enqueue()
    run(wf)
    assert summed.result(timeout=5) == 90


def test_a_chain_into_a_group_and_out(wf: offload.App) -> None:
    add, double, total = task(wf, "add"), task(wf, "double"), task(wf, "total")
    flow = offload.chain(add.s(1, 1), offload.group(double.s(), double.s()), total.s())
    handle = flow.enqueue()
    run(wf)
    assert handle.result(timeout=5) == 8


def test_a_group_returns_every_member_result(wf: offload.App) -> None:
    double = task(wf, "double")
    handle = offload.group(double.s(1), double.s(2), double.s(3)).enqueue()
    run(wf)
    assert handle.result(timeout=5) == [2, 4, 6]


def test_a_dag_child_reads_its_parents_by_name(wf: offload.App) -> None:
    const, seen = task(wf, "const"), task(wf, "seen")
    flow = offload.Workflow()
    flow.add("join", seen.s(), after=["left", "right"])  # added before its parents
    flow.add("left", const.s("L"))
    flow.add("right", const.s("R"))
    handle = flow.enqueue(name="photos")
    run(wf)
    out = handle.nodes["join"].result(timeout=5)
    assert out == {"results": {"left": "L", "right": "R"}, "states": ["succeeded"] * 2}
    summary = wf.workflows()[0]
    assert (summary.id, summary.kind, summary.name, summary.total) == (
        handle.id,
        "workflow",
        "photos",
        3,
    )


def test_app_signature_names_a_task(wf: offload.App) -> None:
    handle = offload.chain(wf.signature("add", 2, 3), wf.signature("double")).enqueue()
    run(wf)
    assert handle.result(timeout=5) == 10


def test_depends_on_holds_a_plain_job_until_its_parent_is_over(wf: offload.App) -> None:
    const, seen = task(wf, "const"), task(wf, "seen")
    parent = const.enqueue(7)
    child = seen.options(depends_on=[parent]).enqueue()
    assert child.status() is JobState.WAITING
    run(wf)
    assert child.result(timeout=5) == {"results": {str(parent.id): 7}, "states": ["succeeded"]}


@pytest.mark.parametrize(
    ("rule", "state"),
    [("fail", JobState.DEAD), ("cancel", JobState.CANCELLED), ("run", JobState.SUCCEEDED)],
)
def test_a_failed_parent_applies_the_rule_to_its_child(
    wf: offload.App, rule: str, state: JobState
) -> None:
    boom, seen = task(wf, "boom"), task(wf, "seen")
    flow = offload.Workflow()
    flow.add("parent", boom.s())
    flow.add("child", seen.s(), after=["parent"], on_parent_failure=rule)
    handle = flow.enqueue()
    run(wf)
    child = handle.nodes["child"].wait(timeout=5)
    assert child.state is state
    if rule == "fail":
        assert child.last_error is not None
        assert f"parent job {handle.nodes['parent'].id}" in child.last_error["message"]
    if rule == "run":
        assert child.result == {"results": {"parent": None}, "states": ["dead"]}


def test_a_chord_whose_member_dies_fails_its_callback(wf: offload.App) -> None:
    double, boom, total = task(wf, "double"), task(wf, "boom"), task(wf, "total")
    handle = offload.chord([double.s(1), boom.s()], total.s()).enqueue()
    run(wf)
    with pytest.raises(offload.JobFailed):
        handle.result(timeout=5)
    assert handle.status() is offload.WorkflowState.FAILED


def test_cancelling_a_workflow_ends_every_unfinished_node(wf: offload.App) -> None:
    double = task(wf, "double")
    handle = offload.chain(double.s(1), double.s(), double.s()).enqueue()
    handle.cancel()
    states = {node.name: node.state for node in handle.record().nodes}
    assert states == {"0": JobState.CANCELLED, "1": JobState.CANCELLED, "2": JobState.CANCELLED}
    assert handle.status() is offload.WorkflowState.CANCELLED


def test_map_reduce_counts_words(wf: offload.App) -> None:
    lines = [f"a b {'c ' * (n % 3)}".strip() for n in range(250)]
    expected = Counter(word for line in lines for word in line.split())
    handle = wf.map("words", lines, chunk_size=40).reduce("merge").enqueue()
    run(wf)
    assert handle.result(timeout=10) == dict(expected)
    combined = wf.map("words", lines, chunk_size=40, combine="combine").reduce("merge").enqueue()
    run(wf)
    assert combined.result(timeout=10) == dict(expected)
    assert len(combined.nodes) == 8  # 7 chunks and the reducer


# -- bad input: a clear error, and nothing of the workflow stored ---------------------


def refuses(app: offload.App, error: type[Exception], match: str, build: Any) -> None:
    before = jobs_stored(app)
    with pytest.raises(error, match=match):
        build().enqueue()
    assert jobs_stored(app) == before
    assert app.workflows() == []


def test_an_unknown_task_is_refused(wf: offload.App) -> None:
    add = task(wf, "add")
    refuses(
        wf, offload.UnknownTask, "nope", lambda: offload.chain(add.s(1, 2), wf.signature("nope"))
    )


def test_non_json_arguments_are_refused_naming_the_node(wf: offload.App) -> None:
    add, const = task(wf, "add"), task(wf, "const")
    refuses(
        wf,
        offload.InvalidWorkflow,
        r"node '1'.*argument 0",
        lambda: offload.chain(add.s(1, 2), const.si(object())),
    )


def test_a_cycle_is_refused(wf: offload.App) -> None:
    const = task(wf, "const")

    def build() -> offload.Workflow:
        flow = offload.Workflow()
        flow.add("a", const.s(1), after=["c"])
        flow.add("b", const.s(1), after=["a"])
        flow.add("c", const.s(1), after=["b"])
        return flow

    refuses(wf, offload.InvalidWorkflow, "cycle", build)


def test_a_missing_node_name_is_refused(wf: offload.App) -> None:
    const = task(wf, "const")

    def build() -> offload.Workflow:
        return offload.Workflow().add("a", const.s(1), after=["ghost"])

    refuses(wf, offload.InvalidWorkflow, "'ghost'", build)


def test_a_callback_that_cannot_take_the_results_is_refused(wf: offload.App) -> None:
    add, double = task(wf, "add"), task(wf, "double")
    refuses(
        wf,
        offload.InvalidWorkflow,
        "cannot take the list of results",
        lambda: offload.chord([double.s(1), double.s(2)], add.s(1, 2)),
    )


def test_a_dependency_on_a_missing_job_is_refused(wf: offload.App) -> None:
    const = task(wf, "const")
    before = jobs_stored(wf)
    with pytest.raises(offload.UnknownDependency, match="999999"):
        const.options(depends_on=[999_999]).enqueue(1)
    with pytest.raises(offload.UnknownDependency):
        offload.chain(const.s(1), const.si(2).set(depends_on=[999_999])).enqueue()
    assert jobs_stored(wf) == before


@pytest.mark.parametrize("bad", [5, "1", [0], [True], ["x"]])
def test_bad_depends_on_values_are_refused(wf: offload.App, bad: Any) -> None:
    with pytest.raises(offload.ValidationError, match="depends_on"):
        task(wf, "const").options(depends_on=bad)


def test_bad_rules_and_chunk_sizes_are_refused(wf: offload.App) -> None:
    with pytest.raises(offload.ValidationError, match="on_parent_failure"):
        task(wf, "const").options(on_parent_failure="explode")
    with pytest.raises(offload.ValidationError, match="chunk_size"):
        wf.map("words", ["a"], chunk_size=0)
    with pytest.raises(offload.InvalidWorkflow, match="cannot take an item"):
        wf.map("add", ["a"]).enqueue()
    with pytest.raises(offload.InvalidWorkflow, match="no items"):
        wf.map("words", []).reduce("merge").enqueue()


def test_parents_results_over_the_limit_fail_the_child_without_running_it(
    wf: offload.App,
) -> None:
    const, seen = task(wf, "const"), task(wf, "seen")
    flow = offload.Workflow()
    flow.add("big", const.s("x" * 100))
    flow.add("child", seen.s(), after=["big"])
    handle = flow.enqueue()
    worker = wf.worker(
        executor="thread", burst=True, install_signals=False, parent_results_limit=50
    )
    assert worker.run() == 0
    child = handle.nodes["child"].wait(timeout=5)
    assert child.state is JobState.DEAD
    assert child.attempt == 1 and child.result is None
    assert child.last_error is not None
    assert child.last_error["type"] == "offload.core.errors.ParentResultsTooLarge"
    assert "over the limit of 50" in child.last_error["message"]


def test_a_bad_parent_results_limit_is_refused(app: offload.App) -> None:
    with pytest.raises(offload.ConfigurationError, match="parent_results_limit"):
        offload.App(app.url, parent_results_limit=0)


def test_a_reducer_streams_results_beyond_the_parents_limit(wf: offload.App) -> None:
    lines = ["a b c"] * 3_000
    handle = wf.map("words", lines, chunk_size=100).reduce("merge").enqueue()
    worker = wf.worker(
        executor="thread", burst=True, install_signals=False, parent_results_limit=2_000
    )
    assert worker.run() == 0
    assert handle.result(timeout=10) == {"a": 3_000, "b": 3_000, "c": 3_000}


def test_map_awaits_an_async_task_and_chunks_take_its_options(wf: offload.App) -> None:
    @wf.task(name="square", max_attempts=1, priority=3)
    async def square(n: int) -> int:
        return n * n

    handle = wf.map("square", range(5), chunk_size=2).enqueue()
    chunk = handle.nodes["map.0"].job()
    assert (chunk.max_attempts, chunk.priority) == (1, 3)
    run(wf)
    assert handle.result(timeout=5) == [[0, 1], [4, 9], [16]]
