"""`offload queues move` on an app over two clusters, and its refusals as one line."""

from __future__ import annotations

import offload
from offload.backends.shards import shard_of
from tests.cli.helpers import assert_one_line_error, base_env, offload_cli

APP = "tests.apps.shards:app"


def test_queues_move_moves_a_queue_and_names_bad_input(
    sharded: offload.App, shard_urls: dict[str, str]
) -> None:
    env = base_env(OFFLOAD_SHARD_ONE=shard_urls["one"], OFFLOAD_SHARD_TWO=shard_urls["two"])
    moved = offload_cli("--app", APP, "queues", "move", "reports", "one", env=env)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout == "reports: new jobs go to shard 'one'\n"
    # This process's App had reports on two: shard two refuses, and it follows.
    assert shard_of(sharded.enqueue("report", [1]).id) == 0

    unknown = offload_cli("--app", APP, "queues", "move", "reports", "tow", env=env)
    assert_one_line_error(unknown, 1, "unknown shard 'tow'", "did you mean 'two'?")
    alone = offload_cli(
        "--app",
        "tests.apps.basic:app",
        "queues",
        "move",
        "default",
        "two",
        env=base_env(OFFLOAD_URL=shard_urls["one"]),
    )
    assert_one_line_error(alone, 1, "move_queue needs an App given shards=")
