"""Subscribers for topic process tests; the database URL comes from $OFFLOAD_URL.

Topic "events" has three groups that record each delivery in the ledger ("<group> <offset>
<pid>") and take $WORKER_HANDLE_SLEEP seconds over it. Topic "urls" feeds the pipeline
stage "fetchers", which records its work ("fetch <offset> <pid>"), waits
$WORKER_STAGE_SLEEP seconds (a kill lands between processing and acknowledging) and
publishes its result to "results".
"""

from __future__ import annotations

import os
import time

import offload
from tests.apps.basic import _record

app = offload.App(os.environ.get("OFFLOAD_URL"))
#: Attempts enough to outlive the test's kills: this is about nothing being lost.
MANY = offload.RetryPolicy(max_attempts=20, base=0.05, max_delay=0.2)
GROUPS = ("indexer", "mailer", "auditor")

for _group in GROUPS:

    def _handle(message: offload.Message, group: str = _group) -> None:
        _record(f"{group} {message.offset}")
        time.sleep(float(os.environ.get("WORKER_HANDLE_SLEEP", "0")))

    app.subscriber("events", group=_group, name=f"events-{_group}", retry=MANY)(_handle)


@app.subscriber("urls", group="fetchers", name="fetch", publish_to="results", retry=MANY)
def fetch(message: offload.Message) -> dict[str, object]:
    _record(f"fetch {message.offset}")
    time.sleep(float(os.environ.get("WORKER_STAGE_SLEEP", "0")))
    return {"url": message.value, "input": message.offset}
