"""Bad input to batch tasks: declarations refused with ConfigurationError, group_by values
refused with ValidationError naming the task, and nothing stored (both backends)."""

from __future__ import annotations

import math
from typing import Any

import pytest

import offload
from offload.core.batch import MAX_GROUP_KEY, BatchOptions
from offload.core.options import TaskOptions
from offload.task import Call


def items_back(items: list[offload.BatchItem]) -> list[Any]:
    return [item.args for item in items]


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"max_size": 0}, "max_size must be an int within [1, 10000], got 0"),
        ({"max_size": -3}, "max_size must be an int within [1, 10000], got -3"),
        ({"max_size": 2.5}, "max_size must be an int within [1, 10000], got 2.5"),
        ({"max_size": True}, "max_size must be an int within [1, 10000], got True"),
        ({"max_size": 10_001}, "max_size must be an int within [1, 10000], got 10001"),
        ({"max_wait": -0.5}, "max_wait must be seconds within [0, 86400], got -0.5"),
        ({"max_wait": math.inf}, "max_wait must be seconds within [0, 86400], got inf"),
        ({"max_wait": math.nan}, "max_wait must be seconds within [0, 86400], got nan"),
        ({"max_wait": "2"}, "max_wait must be seconds within [0, 86400], got '2'"),
        ({"group_by": "user"}, "group_by must be callable, got 'user'"),
    ],
)
def test_bad_declarations_are_refused(
    app: offload.App, settings: dict[str, Any], words: str
) -> None:
    with pytest.raises(offload.ConfigurationError) as info:
        app.batch_task(name="digest", **settings)(items_back)
    assert words in str(info.value)
    assert "digest" not in app.registry


@pytest.mark.parametrize("limits", [{"concurrency": 2}, {"rate_limit": "5/s"}])
def test_batch_options_with_task_limits_are_refused(limits: dict[str, Any]) -> None:
    # `batch_task` has no such parameters; the options themselves refuse the mix too.
    with pytest.raises(offload.ConfigurationError) as info:
        TaskOptions(batch=BatchOptions(10, 1.0, None), **limits)
    assert "a batch task takes no concurrency, rate_limit or limit_key" in str(info.value)


def test_a_batch_task_and_a_queue_rate_limit_cannot_share_a_queue(app: offload.App) -> None:
    app.queue("paced", rate_limit="10/s")
    with pytest.raises(offload.ConfigurationError, match="queue 'paced' has a rate limit"):
        app.batch_task(name="digest", queue="paced")(items_back)
    app.batch_task(name="digest", queue="digests")(items_back)
    with pytest.raises(offload.ConfigurationError, match="queue 'digests' has a rate limit"):
        app.queue("digests", rate_limit="10/s")
    assert "digests" not in app.queues
    app.queue("digests", concurrency=4)  # a concurrency limit is fine


def raises(user: str, line: str) -> str:
    if user == "ann":
        raise ValueError(f"no user {user}")
    return user


def not_json(user: str, line: str) -> object:
    return {user, line} if user == "ann" else user


def too_long(user: str, line: str) -> str:
    return user * (MAX_GROUP_KEY + 1) if user == "ann" else user


def not_finite(user: str, line: str) -> object:
    return math.nan if user == "ann" else user


@pytest.mark.parametrize(
    ("group_by", "words"),
    [
        (raises, "task 'digest': group_by raised ValueError: 'no user ann'"),
        (not_json, "task 'digest': group_by returned {"),
        (too_long, "task 'digest': group_by returned a value of 605 characters as JSON"),
        (not_finite, "task 'digest': group_by returned nan, which is not a JSON"),
    ],
)
@pytest.mark.usefixtures("stored")
def test_a_bad_group_stores_nothing(app: offload.App, group_by: Any, words: str) -> None:
    digest = app.batch_task(name="digest", group_by=group_by)(items_back)
    with pytest.raises(offload.ValidationError) as info:
        digest.enqueue("ann", "hello")
    assert words in str(info.value)
    assert "nothing was stored" in str(info.value)
    with pytest.raises(offload.ValidationError) as many:
        digest.enqueue_many([Call(("bob", "fine")), Call(("ann", "hello"))])
    assert words in str(many.value)
    assert "(call 1)" in str(many.value)


def test_groups_are_json_text_with_sorted_keys(app: offload.App) -> None:
    digest = app.batch_task(name="digest", group_by=lambda user, **kw: user)(items_back)
    plain = app.batch_task(name="plain")(items_back)
    first = digest.enqueue({"b": 1, "a": [2]}).job()
    second = digest.enqueue({"a": [2], "b": 1}).job()
    assert first.group_key == second.group_key == '{"a":[2],"b":1}'
    assert digest.enqueue("ann", x=1).job().group_key == '"ann"'
    assert plain.enqueue(1, 2, x=3).job().group_key == "null"
