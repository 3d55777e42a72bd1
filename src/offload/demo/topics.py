"""`offload demo topics`: the seed pipeline urls -> fetchers -> results -> writer, on a
throwaway SQLite file, through one worker serving both groups.

The fetchers fail a share of their first attempts (a flaky network) and are retried; each
result is published to `results` in the transaction that acknowledges its url, and the
writer appends each result to a file. At the end the demo checks that the file holds each
url exactly once and prints the figures.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from rich.console import Console

from offload.app import App
from offload.core.errors import OffloadError
from offload.core.options import RetryPolicy
from offload.core.topics import Message

console = Console()
#: Share of fetches whose first attempt fails.
FLAKY = 0.1
_QUICK = RetryPolicy(max_attempts=5, base=0.01, max_delay=0.05)


class FetchFailed(Exception):
    """The pretend network dropped the connection; another attempt works."""


def pipeline(url: str, out: Path) -> App:
    """The demo's app: its two subscribers, writing to `out`."""
    app = App(url)
    rng = random.Random(7)

    @app.subscriber("urls", group="fetchers", publish_to="results", retry=_QUICK)
    def fetch(message: Message) -> dict[str, object]:
        if rng.random() < FLAKY:
            raise FetchFailed(message.value)
        body = f"<html>{message.value}</html>"
        return {"url": message.value, "bytes": len(body)}

    @app.subscriber("results", group="writer", start="earliest", retry=_QUICK)
    def write(message: Message) -> None:
        with out.open("a") as lines:
            lines.write(f"{message.value['url']}\n")

    return app


def run_topics_demo(*, messages: int, concurrency: int) -> None:
    """Publish `messages` urls, drain the pipeline with burst workers, check and report.

    Raises OffloadError if the file does not hold each url exactly once."""
    workdir = Path(tempfile.mkdtemp(prefix="offload-demo-topics-"))
    try:
        out = workdir / "results.txt"
        app = pipeline(f"sqlite:///{workdir / 'demo.db'}", out)
        try:
            urls = [f"https://example.com/page/{n}" for n in range(messages)]
            start = time.perf_counter()
            for first in range(0, messages, 1000):
                app.publish_many("urls", urls[first : first + 1000])
            published = time.perf_counter() - start
            # A burst worker stops once nothing is due, and a failed fetch waits out its
            # backoff: run one again until every group has finished every message.
            topics = app.topics()
            while any(group.lag for topic in topics for group in topic.groups):
                app.worker(executor="thread", concurrency=concurrency, burst=True).run()
                topics = app.topics()
            elapsed = time.perf_counter() - start
        finally:
            app.close()
        written = Counter(out.read_text().splitlines()) if out.exists() else Counter()
        for topic in topics:
            for group in topic.groups:
                console.print(
                    f"{topic.name:8} {topic.messages:6} messages  group {group.name:9} "
                    f"cursor {group.cursor:6}  lag {group.lag}  dead {group.dead}"
                )
        console.print(
            f"{messages} urls published in {published:.2f}s, through both stages in "
            f"{elapsed:.2f}s ({2 * messages / elapsed:.0f} deliveries/s)"
        )
        if written != Counter(urls):
            raise OffloadError(f"the file holds {sum(written.values())} lines for {messages} urls")
        console.print(f"results.txt holds each of the {messages} urls exactly once")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
