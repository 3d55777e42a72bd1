"""`offload topics`, `topics replay`, `topics retention` and `worker --groups`, on the
subscribers of tests.apps.topics: listings, replays that move the cursor, and bad input
failing with one `error:` line, moving nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import offload
from tests.cli.helpers import assert_one_line_error, base_env, offload_cli, run_json


@pytest.fixture
def topics_env(db_url: str) -> dict[str, str]:
    return base_env(OFFLOAD_APP="tests.apps.topics:app", OFFLOAD_URL=db_url)


@pytest.fixture
def topics_store(db_url: str, topics_env: dict[str, str]) -> Iterator[offload.App]:
    """The database after `offload migrate` stored the app's groups, and 5 events."""
    migrated = offload_cli("migrate", env=topics_env)
    assert migrated.returncode == 0, migrated.stderr
    app = offload.App(db_url)
    app.publish_many("events", list(range(5)))
    yield app
    app.close()


def cursors(app: offload.App) -> dict[str, int]:
    return {g.name: g.cursor for t in app.topics() for g in t.groups}


def test_list_replay_and_retention(topics_store: offload.App, topics_env: dict[str, str]) -> None:
    env = {**topics_env, "WORKER_HANDLE_SLEEP": "0"}
    ran = offload_cli("worker", "--burst", "--executor", "thread", "--groups", "indexer", env=env)
    assert ran.returncode == 0, ran.stderr
    listed = {t["name"]: t for t in run_json("topics", "--json", env=env)}
    assert (listed["events"]["messages"], listed["events"]["last"]) == (5, 5)
    groups = {g["name"]: (g["cursor"], g["lag"]) for g in listed["events"]["groups"]}
    assert groups == {"auditor": (0, 5), "indexer": (5, 0), "mailer": (0, 5)}
    table = offload_cli("topics", env=env)
    assert table.returncode == 0 and "indexer" in table.stdout and "forever" in table.stdout

    replayed = offload_cli("topics", "replay", "indexer", "--from", "2", env=env)
    assert (replayed.returncode, replayed.stdout) == (0, "events/indexer: cursor at 2\n")
    by_time = offload_cli("topics", "replay", "mailer", "--from", "1h", env=env)
    assert (by_time.returncode, by_time.stdout) == (0, "events/mailer: cursor at 0\n")

    kept = offload_cli(
        "topics", "retention", "events", "--days", "7", "--max-messages", "3", env=env
    )
    assert (kept.returncode, kept.stdout) == (0, "events: retention 7 days, 3 messages\n")
    (events,) = [t for t in topics_store.topics() if t.name == "events"]
    assert (events.retention_seconds, events.retention_messages) == (7 * 86400.0, 3)


def test_bad_input_fails_with_one_line_and_moves_nothing(
    topics_store: offload.App, topics_env: dict[str, str]
) -> None:
    before = cursors(topics_store)
    cases = [
        (
            ("topics", "replay", "indexr", "--from", "1"),
            1,
            ("no group 'indexr'", "did you mean 'indexer'"),
        ),
        (("topics", "replay", "indexer", "--from", "6"), 1, ("offset 6 is past the end",)),
        (("topics", "replay", "indexer", "--from", "yesterday-ish"), 2, ("is not a time",)),
        (("topics", "replay", "indexer"), 2, ("--from",)),
        (("topics", "retention", "events", "--days", "0"), 1, ("days must be a number > 0",)),
        (("topics", "retention", "bad name", "--days", "1"), 1, ("topic name",)),
        (("worker", "--burst", "--groups", "indexr"), 1, ("did you mean 'indexer'",)),
        (
            ("queues", "set", "topic:events:indexer", "--shed-depth", "5", "--shed-priority", "1"),
            1,
            ("queue 'topic:events:indexer' is a consumer group's", "shed_depth"),
        ),
    ]
    for args, code, fragments in cases:
        assert_one_line_error(offload_cli(*args, env=topics_env), code, *fragments)
    assert cursors(topics_store) == before
    (events,) = [t for t in topics_store.topics() if t.name == "events"]
    assert (events.retention_seconds, events.retention_messages) == (None, None)
    assert topics_store.queue_policies() == []
