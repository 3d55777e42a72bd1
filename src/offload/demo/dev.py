"""Sample jobs for `offload dev` on the bundled demo app: a little of everything its
dashboard shows (queued and finished jobs, retries, a dead job, a workflow, a schedule)."""

from __future__ import annotations

import offload
from offload.demo import app as demo


def enqueue_samples(jobs: int = 40) -> None:
    """Enqueue `jobs` thumbnails and e-mails, a post's fan-out, a feed import that dies,
    a few delayed reminders and a chord of thumbnails gathered into an album."""
    demo.thumbnail.enqueue_many(offload.call(photo, 64) for photo in range(jobs // 2))
    demo.send_email.enqueue_many(offload.call(user, "welcome") for user in range(jobs - jobs // 2))
    demo.publish.enqueue(1, [10, 11, 12])
    demo.import_feed.enqueue("https://news.example/rss")
    demo.import_feed.enqueue("https://feeds.invalid/rss")
    for user in range(3):
        demo.send_email.options(delay=60.0 * (user + 1)).enqueue(user, "reminder")
    header = [demo.thumbnail.s(photo, 32) for photo in range(100, 104)]
    offload.chord(header, demo.app.signature("demo.album")).enqueue(name="album")
