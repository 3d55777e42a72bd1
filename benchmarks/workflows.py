"""Workflows: a map-reduce word count on the worker pool vs the same loop in one process,
and the release latency from a parent's finish to its child's start.

Word count: `--lines` generated lines of 8 words from a 500-word vocabulary. "one process"
counts them in a plain loop calling the map task's function; "pool" enqueues
`app.map("words", lines, chunk_size=C, combine="word_combine").reduce("word_merge")` and
times from the call of `enqueue()` until its result is read, with one worker process
(process executor, 2 slots: one per core of this machine) started beforehand. Each chunk
size of `--chunks` is one variant; each result is checked against the loop's counts.

Release latency: a chain of `--links` no-op jobs run by the same worker; each link's
latency is its start time minus its parent's finish time, both stored by the database's
own clock. Prints p50 and p99 (milliseconds) per round.

    .venv/bin/python benchmarks/workflows.py [--backend both] [--rounds 3] [--lines 100000]
"""

from __future__ import annotations

import contextlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(ROOT))

import offload  # noqa: E402
from benchmarks._rounds import arguments, ratios, rounds, spread, targets  # noqa: E402
from benchmarks.throughput import kill_group, load_bench_app, start_runner  # noqa: E402
from benchmarks.wordcount import count_words, merge_counts  # noqa: E402
from offload.core.options import EnqueueOptions  # noqa: E402

VOCABULARY = [f"w{i}" for i in range(500)]


def generate(count: int) -> list[str]:
    rng = random.Random(count)
    return [" ".join(rng.choices(VOCABULARY, k=8)) for _ in range(count)]


def one_process(lines: list[str]) -> tuple[float, dict[str, int]]:
    """Seconds for the plain loop over the map task's own function, and its counts."""
    start = time.perf_counter()
    counts = merge_counts(count_words(line) for line in lines)
    return time.perf_counter() - start, counts


@contextlib.contextmanager
def worker(url: str) -> Iterator[None]:
    """One worker process serving the database at `url` (started before any timing)."""
    with tempfile.TemporaryFile("w+") as log:
        args = ["serve", "--executor", "process", "--concurrency", "2"]
        proc = start_runner(url, args, subprocess.DEVNULL, log)
        try:
            yield
        finally:
            kill_group(proc)


def pooled(app: offload.App, lines: list[str], chunk: int, expected: dict[str, int]) -> float:
    start = time.perf_counter()
    flow = app.map("words", lines, chunk_size=chunk, combine="word_combine")
    counts = flow.reduce("word_merge").enqueue().result(timeout=600)
    seconds = time.perf_counter() - start
    if counts != expected:
        raise AssertionError(f"chunk {chunk}: the pool's counts differ from the loop's")
    return seconds


def latencies(app: offload.App, links: int) -> list[float]:
    """Milliseconds from each link's parent's finish to its start, by the stored times."""
    noop = offload.Task[[], None](app, app.registry.get("noop"), EnqueueOptions())
    handle = offload.chain(*[noop.si() for _ in range(links)]).enqueue()
    record = handle.wait(timeout=600)
    jobs = {node.job_id: app.backend.jobs.get(node.job_id) for node in record.nodes}
    out = []
    for node in record.nodes:
        for parent in node.parents:
            started, finished = jobs[node.job_id].started_at, jobs[parent].finished_at
            assert started is not None and finished is not None
            out.append((started - finished).total_seconds() * 1000)
    return out


def main() -> None:
    parser = arguments(__doc__ or "", rounds=3, jobs=0)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--chunks", default="100,1000,10000", help="chunk sizes to compare")
    parser.add_argument("--links", type=int, default=300, help="chain length (latency)")
    args = parser.parse_args()
    chunks = [int(c) for c in args.chunks.split(",")]
    lines = generate(args.lines)
    loop_seconds, expected = one_process(lines)
    print(f"{args.lines} lines; the loop in one process: {loop_seconds:.2f} s")
    variants = ["loop", *(f"pool/{c}" for c in chunks), "latency"]
    with targets(args.backend) as chosen:
        for target in chosen:
            bench = Bench(lines, expected, args.links)
            figures = rounds(target, args.rounds, variants, bench.measure)
            print(f"\n{target.key}: {args.lines} lines, medians of {args.rounds} rounds")
            loop = figures["loop"]
            print(f"  loop in one process: {statistics.median(loop):.2f} s")
            for c in chunks:
                seconds = figures[f"pool/{c}"]
                speed = ratios(loop, seconds)  # > 1: the pool is faster
                print(
                    f"  pool, chunk {c}: {statistics.median(seconds):.2f} s; "
                    f"loop time / pool time {spread(speed)}"
                )
            p50s, p99s = bench.p50s, bench.p99s
            print(
                f"  release latency over {args.links - 1} links: p50 "
                f"{statistics.median(p50s):.1f} ms, p99 {statistics.median(p99s):.1f} ms "
                f"(rounds: p50 {[round(x, 1) for x in p50s]}, p99 {[round(x, 1) for x in p99s]})"
            )


class Bench:
    """One backend's measurements, by variant; the latency rounds' percentiles kept."""

    def __init__(self, lines: list[str], expected: dict[str, int], links: int) -> None:
        self.lines, self.expected, self.links = lines, expected, links
        self.p50s: list[float] = []
        self.p99s: list[float] = []

    def measure(self, url: str, variant: str) -> float:
        if variant == "loop":
            return one_process(self.lines)[0]
        app, noop = load_bench_app(url)
        app.migrate()
        try:
            with worker(url):
                noop.enqueue().result(timeout=120)  # the worker is up, its children forked
                if variant == "latency":
                    found = latencies(app, self.links)
                    self.p50s.append(statistics.median(found))
                    self.p99s.append(statistics.quantiles(found, n=100)[98])
                    return self.p50s[-1]
                return pooled(app, self.lines, int(variant.split("/")[1]), self.expected)
        finally:
            app.close()


if __name__ == "__main__":
    main()
