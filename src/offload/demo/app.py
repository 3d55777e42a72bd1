"""The demo app behind `offload demo`: background jobs of a small photo-sharing site.

The database comes from $OFFLOAD_DEMO_URL (set by `offload demo` before it imports this
module, so the worker's child processes open the same file), else $OFFLOAD_URL. Try it on
your own database with `offload --app offload.demo.app:app worker -q media,mail,feeds`.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from typing import Any

import offload

app = offload.App(os.environ.get("OFFLOAD_DEMO_URL") or os.environ.get("OFFLOAD_URL"))

QUEUES = ("media", "mail", "feeds")
#: Thumbnails are this many times smaller than the (generated) photo on each side.
SHRINK = 4
MAIL_FAILURE_RATE = 0.2


class MailServerBusy(Exception):
    """The pretend mail server refused the message; another attempt usually works."""


@app.task(name="demo.thumbnail", queue="media")
def thumbnail(photo_id: int, size: int = 128) -> dict[str, Any]:
    """Shrink a generated photo to `size` x `size` by box averaging: 5-15 ms of CPU."""
    rng = random.Random(photo_id)
    side = size * SHRINK
    pixels = rng.randbytes(side * side)
    out = bytearray(size * size)
    for y in range(size):
        top = y * SHRINK * side
        rows = [pixels[top + dy * side : top + (dy + 1) * side] for dy in range(SHRINK)]
        for x in range(size):
            left = x * SHRINK
            total = sum(sum(row[left : left + SHRINK]) for row in rows)
            out[y * size + x] = total // (SHRINK * SHRINK)
    digest = hashlib.blake2b(bytes(out), digest_size=8).hexdigest()
    return {"photo": photo_id, "size": size, "digest": digest}


@app.task(
    name="demo.send_email",
    queue="mail",
    retry=offload.RetryPolicy(max_attempts=4, base=0.05, max_delay=0.5),
)
def send_email(user_id: int, template: str) -> str:
    """Talk to a slow, flaky mail server: 10-50 ms, and one call in five fails."""
    time.sleep(random.uniform(0.01, 0.05))
    if random.random() < MAIL_FAILURE_RATE:
        raise MailServerBusy(f"421 try again later (user {user_id}, {template})")
    return f"<{template}.{user_id}@demo.offload>"


@app.task(name="demo.deliver", queue="feeds")
def deliver(post_id: int, follower_id: int) -> str:
    """Put a post into one follower's feed."""
    return f"feed:{follower_id}:{post_id}"


@app.task(name="demo.publish", queue="feeds")
def publish(post_id: int, followers: list[int]) -> int:
    """Fan a new post out to its author's followers: one `deliver` job each, one commit."""
    deliver.enqueue_many(offload.call(post_id, follower) for follower in followers)
    return len(followers)


@app.task(name="demo.album", queue="media")
def album(thumbnails: list[dict[str, Any]]) -> dict[str, Any]:
    """Gather a chord's thumbnails into one album (the fan-in of `offload dev`'s workflow)."""
    return {"photos": [t["photo"] for t in thumbnails], "count": len(thumbnails)}


class FeedUnreachable(Exception):
    """The pretend feed server does not answer: the job dies at once."""


@app.task(name="demo.import_feed", queue="feeds", retry=offload.RetryPolicy(max_attempts=1))
def import_feed(url: str) -> int:
    """Import a feed; an `.invalid` host never answers, so its job dies (a dead job to
    look at in `offload dev`'s dashboard)."""
    if url.split("/")[2].endswith(".invalid"):
        raise FeedUnreachable(f"no answer from {url}")
    return len(url)


@app.periodic("* * * * *", name="demo.digest")
@app.task(name="demo.digest", queue="mail")
def digest() -> str:
    """Send the minute's digest (a schedule for the dashboard's cron page)."""
    return "digest sent"
