"""The topics benchmark's app (benchmarks/topics.py): a no-op task, and three consumer
groups of topic "bench" whose subscribers do nothing. A module of its own, so that the
other benchmarks' workers (benchmarks.bench_app) serve no group. Set $OFFLOAD_URL first."""

from __future__ import annotations

import os

import offload

APP_PATH = "benchmarks.topics_app:app"
GROUPS = ("g1", "g2", "g3")

app = offload.App(os.environ["OFFLOAD_URL"])


@app.task(name="noop")
def noop() -> None:
    """A plain job's figures, beside the messages'."""
    return None


for _group in GROUPS:

    def _consume(message: offload.Message) -> None:
        return None

    app.subscriber("bench", group=_group, name=f"bench-{_group}")(_consume)
