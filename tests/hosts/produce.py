"""A producer host: `python -m tests.hosts.produce KIND ...` enqueues jobs of tests.hosts.app
and prints their ids as JSON on stdout.

    work COUNT SECONDS           COUNT runs of hosts.work(SECONDS), in batches of 1,000
    limits KEYS EACH SECONDS     per key, EACH hosts.capped(key, SECONDS) and EACH hosts.paced(key)
"""

from __future__ import annotations

import json
import sys

from tests.hosts.app import app, capped, paced, work

BATCH = 1000


def main(argv: list[str]) -> int:
    kind, *rest = argv
    ids: list[int] = []
    if kind == "work":
        count, seconds = int(rest[0]), float(rest[1])
        for start in range(0, count, BATCH):
            size = min(BATCH, count - start)
            ids += [h.id for h in work.enqueue_many([(seconds,)] * size)]
    elif kind == "limits":
        keys, each, seconds = int(rest[0]), int(rest[1]), float(rest[2])
        names = [f"key{n}" for n in range(keys)]
        ids += [h.id for h in capped.enqueue_many([(k, seconds) for k in names] * each)]
        ids += [h.id for h in paced.enqueue_many([(k,) for k in names] * each)]
    else:
        raise SystemExit(f"unknown kind {kind!r}: work or limits")
    app.close()
    json.dump(ids, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
