"""The package's shape: public surface, layers, and no unsafe deserialisation."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import offload

SRC = Path(offload.__file__).resolve().parent

#: Each part of the package, and the parts it may import: core -> backends -> runtime ->
#: the Python API (app, task, workflow, handle) -> the faces built on it (demo, server,
#: cli) -> `python -m offload`. Nothing imports upward.
_API = {"app", "task", "workflow", "workflow_handle", "handle", "runtime", "backends", "core"}
LAYERS = {
    "core": {"core"},
    "backends": {"backends", "core"},
    "runtime": {"runtime", "backends", "core"},
    "handle": {"handle", "backends", "core"},
    "app": _API,
    "task": _API,
    "workflow": _API,
    "workflow_handle": {"workflow_handle", "handle", "backends", "core"},
    "demo": {"demo", *_API},
    # The HTTP face: the API mounts the dashboard's pages, which reuse its event streams.
    "server": {"server", "dashboard", *_API},
    "dashboard": {"dashboard", "server", *_API},
    "client": {"client", "core", "task"},
    "cli": {"cli", "demo", "server", "dashboard", *_API},
    "testing": {"testing", *_API},
    "contrib": {"contrib", "server", "cli", *_API},
    "__main__": {"cli"},
}
#: The storage areas of the SQL backends: each runs its own queries and imports no other
#: area (the connector hands them to each other at run time).
AREAS = (
    "jobs",
    "claims",
    "schedules",
    "workers",
    "schema",
    "sweep",
    "tokens",
    "workflows",
    "topics",
    "leaders",
)


def imports_of(path: Path) -> set[str]:
    """Every offload module a file imports (absolute names)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("offload.")}


def test_public_surface_is_pinned() -> None:
    assert sorted(offload.__all__) == [
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
    for name in offload.__all__:
        assert hasattr(offload, name), name


def test_client_surface_is_pinned() -> None:
    import offload.client

    assert sorted(offload.client.__all__) == [
        "AsyncClient",
        "Client",
        "DEFAULT_TIMEOUT",
        "EnqueueOptions",
        "Enqueued",
        "WorkflowEnqueued",
    ]
    for name in offload.client.__all__:
        assert hasattr(offload.client, name), name


def _files(part: str) -> list[Path]:
    folder = SRC / part
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [SRC / f"{part}.py"]


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_import_only_downwards(layer: str) -> None:
    allowed = LAYERS[layer]
    for path in _files(layer):
        for module in imports_of(path):
            assert module.split(".")[1] in allowed, f"{path.relative_to(SRC)} imports {module}"


def test_every_module_belongs_to_a_layer() -> None:
    top = {path.relative_to(SRC).parts[0].removesuffix(".py") for path in SRC.glob("*")}
    assert top - {"__init__", "py.typed", "__pycache__"} == set(LAYERS)


def test_storage_areas_import_no_other_area() -> None:
    for area in AREAS:
        path = SRC / "backends" / "sql" / f"{area}.py"
        others = {f"offload.backends.sql.{other}" for other in AREAS if other != area}
        assert not imports_of(path) & others, f"{area}.py imports another area"
        for backend in ("sqlite", "postgres"):
            assert (SRC / "backends" / backend / f"{area}.sql").is_file(), (backend, area)


def test_internal_modules_are_documented_as_such() -> None:
    """The public surface is `offload` itself (pinned above); every other module is
    internal, which the package docstring says."""
    assert offload.__doc__ is not None
    assert "internal" in offload.__doc__


def test_no_sql_outside_the_backends() -> None:
    for path in SRC.rglob("*.py"):
        if "backends" in path.parts:
            continue
        text = path.read_text()
        for keyword in ("SELECT ", "UPDATE offload", "INSERT INTO", "DELETE FROM"):
            assert keyword not in text, f"{path.relative_to(SRC)} contains SQL ({keyword!r})"


UNSAFE = {"pickle", "marshal", "shelve", "dill", "cloudpickle"}


def test_nothing_is_ever_unpickled_or_evaluated() -> None:
    """RELIABILITY 35: no pickle-family module, eval/exec or unsafe yaml anywhere."""
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
                assert not names & UNSAFE, f"{path.name} imports {names & UNSAFE}"
            elif isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in UNSAFE, f"{path.name}: {node.module}"
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec"}, f"{path.name} calls {node.func.id}"


def test_every_error_is_under_the_root_and_drawn_in_the_tree() -> None:
    """Each exception class of offload.core.errors descends from OffloadError and appears in
    the tree of its module docstring; the public names are the same classes."""
    import inspect

    from offload.core import errors

    classes = [
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and obj.__module__ == errors.__name__
    ]
    tree = errors.__doc__ or ""
    for cls in classes:
        assert issubclass(cls, errors.OffloadError), cls
        assert f" {cls.__name__} " in tree.replace("\n", " \n"), f"{cls.__name__} not drawn"
    assert offload.JobCancelled is errors.JobCancelled


def test_testing_and_contrib_surfaces_are_pinned() -> None:
    import offload.contrib.asgi
    import offload.contrib.django
    import offload.contrib.flask
    import offload.contrib.otel
    import offload.testing

    assert sorted(offload.testing.__all__) == [
        "Drained",
        "Harness",
        "InlineTransaction",
        "harness",
    ]
    assert sorted(offload.contrib.asgi.__all__) == ["HostLifespan", "Lifespan", "lifespan"]
    assert sorted(offload.contrib.flask.__all__) == ["API_OPTIONS", "Offload"]
    assert sorted(offload.contrib.otel.__all__) == [
        "LEASE_LOST",
        "MetricsMiddleware",
        "SYSTEM",
        "TRACE_KEYS",
        "TracingMiddleware",
        "old_names_too",
    ]
    assert sorted(offload.contrib.django.__all__) == [
        "OffloadBackend",
        "get_app",
        "release",
        "schedule",
    ]
