"""TaskOptions, names, delays and the task registry: validated when declared, named errors."""

from __future__ import annotations

import math
from typing import Any

import pytest

import offload
from offload.core.errors import ConfigurationError, UnknownTask, ValidationError
from offload.core.options import RetryPolicy, TaskOptions, check_delay, check_name
from offload.core.task import Registry, TaskDef


def test_defaults() -> None:
    options = TaskOptions()
    assert options.queue == "default"
    assert options.priority == 0
    assert options.retry == RetryPolicy()
    assert options.retry.max_attempts == 3
    assert options.timeout is None


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"queue": ""}, "queue name"),
        ({"queue": "q" * 201}, "queue name"),
        ({"queue": "tab\there"}, "control character"),
        ({"queue": "nul\x00"}, "control character"),
        ({"queue": 5}, "queue name"),
        ({"queue": None}, "queue name"),
        ({"priority": 1001}, "priority"),
        ({"priority": -1001}, "priority"),
        ({"priority": 1.0}, "priority must be an int"),
        ({"priority": True}, "priority must be an int"),
        ({"priority": "1"}, "priority must be an int"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
        ({"timeout": True}, "timeout must be a number"),
        ({"timeout": "5"}, "timeout must be a number"),
    ],
    ids=str,
)
def test_invalid_task_options_are_refused_naming_the_option(
    kwargs: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConfigurationError, match=words):
        TaskOptions(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"queue": "q" * 200},
        {"queue": "émails 📨"},
        {"priority": 1000},
        {"priority": -1000},
        {"timeout": 0.001},
        {"timeout": 3600},
        {"retry": RetryPolicy(max_attempts=1, base=0, max_delay=0)},
    ],
    ids=str,
)
def test_valid_task_options_are_kept(kwargs: dict[str, Any]) -> None:
    options = TaskOptions(**kwargs)
    for name, value in kwargs.items():
        assert getattr(options, name) == value


@pytest.mark.parametrize("name", ["cpu_seconds", "memory_mb"])
@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, True, "1"])
def test_invalid_resource_limits_are_refused(name: str, value: Any) -> None:
    if name not in TaskOptions.__dataclass_fields__:
        pytest.skip(f"TaskOptions has no {name}")
    with pytest.raises(ConfigurationError, match=name):
        TaskOptions(**{name: value})


def test_check_name_and_check_delay() -> None:
    assert check_name("queue", "mail") == "mail"
    with pytest.raises(ConfigurationError, match="task name"):
        check_name("task", "")
    assert check_delay(0) == 0.0
    assert check_delay(2.5) == 2.5
    for bad in (-0.1, math.nan, math.inf, "1", None, True):
        with pytest.raises(ValidationError, match="delay"):  # a delay is given per call
            check_delay(bad)  # type: ignore[arg-type]


def test_options_are_immutable() -> None:
    options = TaskOptions()
    with pytest.raises(AttributeError):
        options.queue = "other"  # type: ignore[misc]


# -- app.task declarations --------------------------------------------------------------


def test_app_task_validates_at_declaration(tmp_path: Any) -> None:
    app = offload.App(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        with pytest.raises(ConfigurationError, match="priority"):
            app.task(name="a", priority=5000)
        with pytest.raises(ConfigurationError, match="max_attempts"):
            app.task(name="b", max_attempts=0)
        with pytest.raises(ConfigurationError, match="either directly or in retry"):
            app.task(name="c", max_attempts=5, retry=RetryPolicy(max_attempts=2))
        with pytest.raises(ConfigurationError, match="queue name"):
            app.task(name="d", queue="")
        with pytest.raises(ConfigurationError, match="unknown task option 'retries'"):
            app.task(name="e", retries=3)  # type: ignore[call-overload]
        with pytest.raises(ConfigurationError, match="unknown task option 'max_sise'"):
            app.batch_task(name="f", max_sise=10)  # type: ignore[call-arg]
        with pytest.raises(ConfigurationError, match="a batch task takes no concurrency"):
            app.batch_task(name="g", concurrency=2)  # type: ignore[call-arg]
        assert app.registry.names() == []

        @app.task(name="ok", max_attempts=7, queue="q")
        def ok() -> None:
            return None

        assert app.registry.get("ok").options.retry.max_attempts == 7
        assert app.registry.get("ok").options.queue == "q"
    finally:
        app.close()


# -- the registry ------------------------------------------------------------------------


def _fn_a() -> None:
    return None


def _fn_b() -> None:
    return None


def test_registry_refuses_two_functions_under_one_name() -> None:
    registry = Registry()
    registry.add(TaskDef("send", _fn_a, TaskOptions()))
    registry.add(TaskDef("send", _fn_a, TaskOptions()))  # the same function again is fine
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.add(TaskDef("send", _fn_b, TaskOptions()))
    assert registry.names() == ["send"]
    assert "send" in registry
    assert "other" not in registry


@pytest.mark.parametrize("name", ["", "x" * 201, "bad\nname"])
def test_registry_refuses_bad_task_names(name: str) -> None:
    with pytest.raises(ConfigurationError):
        Registry().add(TaskDef(name, _fn_a, TaskOptions()))


def test_unknown_task_suggests_the_closest_name() -> None:
    registry = Registry()
    for name in ("send_email", "resize_image", "noop"):
        registry.add(TaskDef(name, _fn_a, TaskOptions()))
    with pytest.raises(UnknownTask, match="did you mean 'send_email'"):
        registry.get("send_emial")
    with pytest.raises(UnknownTask) as info:
        registry.get("zzzzzz")
    assert "did you mean" not in str(info.value)
    assert info.value.name == "zzzzzz"
    assert isinstance(info.value, offload.ValidationError)
