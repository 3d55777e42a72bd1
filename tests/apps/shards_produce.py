"""A producer of the shard tests: `python -m tests.apps.shards_produce COUNT OUT` enqueues
COUNT `record` jobs one by one through tests.apps.shards' App (its own shard map, never
told of a move), appending each acknowledged id to OUT as it returns."""

from __future__ import annotations

import sys
import time

from tests.apps.shards import record


def main() -> int:
    count, out = int(sys.argv[1]), sys.argv[2]
    with open(out, "a", buffering=1) as ids:  # a line per id: the test watches progress
        for n in range(count):
            ids.write(f"{record.enqueue(n).id}\n")
            time.sleep(0.002)  # a steady stream rather than one burst
    return 0


if __name__ == "__main__":
    sys.exit(main())
