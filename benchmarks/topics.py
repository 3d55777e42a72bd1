"""Topics against plain jobs: publish throughput (one per call, and batches of 1,000) beside
enqueue's, and the latency from a publish to each of 3 groups' start of it beside the
latency from an enqueue to the job's start.

Each round takes a fresh database per measurement. Throughput: `--messages` calls of
`app.publish` (`noop.enqueue`) one at a time, then as many in `publish_many`
(`enqueue_many`) batches of 1,000, no worker running. Latency: one worker process
(`offload worker -c 2`, process executor) serving the default queue and the 3 groups of
benchmarks.topics_app, `--paced` publishes (enqueues) 10 ms apart; each delivery's start
minus its message's publish time (a job's start minus its enqueue time), both as the
database stored them. Prints medians per measure and the per-round ratios topics / jobs.

    .venv/bin/python benchmarks/topics.py [--backend both] [--rounds 3] [--messages 2000]
"""

from __future__ import annotations

import contextlib
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(ROOT))

import offload  # noqa: E402
from benchmarks._rounds import arguments, ratios, rounds, spread, targets  # noqa: E402
from benchmarks.throughput import kill_group  # noqa: E402

MEASURES = (
    "enqueue 1/call",
    "publish 1/call",
    "enqueue_many",
    "publish_many",
    "job latency",
    "message latency",
)
BATCH = 1000


def load(url: str) -> Any:
    """(Re)import benchmarks.topics_app on the database at `url`, migrated."""
    os.environ["OFFLOAD_URL"] = url
    name = "benchmarks.topics_app"
    module = (
        importlib.reload(sys.modules[name])
        if name in sys.modules
        else importlib.import_module(name)
    )
    module.app.migrate()
    return module


@contextlib.contextmanager
def worker(url: str) -> Iterator[None]:
    """One worker process of benchmarks.topics_app (its queue and its 3 groups)."""
    env = dict(os.environ, OFFLOAD_URL=url)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "offload", "--app", "benchmarks.topics_app:app"]
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [*command, "worker", "-c", "2"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            yield
        finally:
            kill_group(proc)


def percentiles(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), statistics.quantiles(values, n=100)[98]


class Bench:
    """One backend's measurements; each latency round's p50 and p99 kept by measure."""

    def __init__(self, messages: int, paced: int) -> None:
        self.messages, self.paced = messages, paced
        self.p99: dict[str, list[float]] = {"job latency": [], "message latency": []}

    def measure(self, url: str, variant: str) -> float:
        module = load(url)
        app = module.app
        try:
            if variant.endswith("latency"):
                return self.latency(app, module, variant)
            return self.rate(app, module, variant)
        finally:
            app.close()

    def rate(self, app: offload.App, module: Any, variant: str) -> float:
        n = self.messages
        start = time.perf_counter()
        if variant == "enqueue 1/call":
            for _ in range(n):
                module.noop.enqueue()
        elif variant == "publish 1/call":
            for i in range(n):
                app.publish("bench", {"i": i})
        elif variant == "enqueue_many":
            for first in range(0, n, BATCH):
                module.noop.enqueue_many([()] * min(BATCH, n - first))
        else:
            for first in range(0, n, BATCH):
                app.publish_many("bench", [{"i": i} for i in range(first, min(first + BATCH, n))])
        return n / (time.perf_counter() - start)

    def latency(self, app: offload.App, module: Any, variant: str) -> float:
        with worker(app.url):
            module.noop.enqueue().result(timeout=120)  # the worker is up, its children forked
            warm = app.publish("bench", {"warm": True})
            self._settled(app, 3 + 1)
            queued = []
            for i in range(self.paced):
                if variant == "job latency":
                    queued.append(module.noop.enqueue().id)
                else:
                    app.publish("bench", {"i": i})
                time.sleep(0.01)
            expected = 1 + self.paced if variant == "job latency" else 3 * (self.paced + 1)
            self._settled(app, expected + (0 if variant == "job latency" else 1))
            found = self._latencies(app, variant, queued, warm)
        p50, p99 = percentiles(found)
        self.p99[variant].append(p99)
        return p50

    @staticmethod
    def _settled(app: offload.App, succeeded: int) -> None:
        deadline = time.monotonic() + 120
        while sum(states.get("succeeded", 0) for states in app.queue_counts().values()) < succeeded:
            if time.monotonic() > deadline:
                raise TimeoutError(f"not {succeeded} jobs succeeded: {app.queue_counts()}")
            time.sleep(0.02)

    @staticmethod
    def _latencies(app: offload.App, variant: str, queued: list[int], warm: int) -> list[float]:
        """Milliseconds from each enqueue (publish) to its start, as stored."""
        out = []
        if variant == "job latency":
            for job_id in queued:
                job = app.backend.jobs.get(job_id)
                assert job.started_at is not None
                out.append((job.started_at - job.enqueued_at).total_seconds() * 1000)
            return out
        for group in module_groups():
            for job in app.jobs(queue=f"topic:bench:{group}", limit=10_000):
                message = job.args[0]
                if int(message["offset"]) <= warm:
                    continue
                assert job.started_at is not None
                published = datetime.fromisoformat(message["published_at"])
                out.append((job.started_at - published).total_seconds() * 1000)
        return out


def module_groups() -> tuple[str, ...]:
    from benchmarks.topics_app import GROUPS

    return GROUPS


def main() -> None:
    parser = arguments(__doc__ or "", rounds=3, jobs=0)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--paced", type=int, default=200)
    args = parser.parse_args()
    with targets(args.backend, durable_commits=True) as chosen:
        for target in chosen:
            bench = Bench(args.messages, args.paced)
            figures = rounds(target, args.rounds, MEASURES, bench.measure)
            print(f"\n{target.key}: medians of {args.rounds} rounds")
            for jobs, topics, unit in (
                ("enqueue 1/call", "publish 1/call", "per s"),
                ("enqueue_many", "publish_many", "per s"),
                ("job latency", "message latency", "ms p50"),
            ):
                a, b = figures[jobs], figures[topics]
                print(
                    f"  {topics}: {statistics.median(b):,.1f} {unit}; {jobs}: "
                    f"{statistics.median(a):,.1f}; topics / jobs {spread(ratios(b, a))}"
                )
            for variant, p99s in bench.p99.items():
                print(f"  {variant} p99 (ms) by round: {[round(x, 1) for x in p99s]}")


if __name__ == "__main__":
    main()
