"""An app with per-second schedules, one per misfire policy, for scheduler tests."""

from __future__ import annotations

import os

import offload

app = offload.App(os.environ.get("OFFLOAD_URL"))


@app.task(name="tick")
def tick(schedule: str) -> str:
    return schedule


for _policy in ("all", "last", "skip"):
    app.schedule(
        tick, "* * * * * *", name=f"every_second_{_policy}", args=[_policy], misfire=_policy
    )
