"""Instructions per job of SQLite's hot operations, base tree against another, counted by
callgrind: figures that do not move with the machine's load. Each operation runs in a
process of its own on a fresh database in /dev/shm, once with `--rounds` rounds and once
with none (same setup and warm-up); the difference over the jobs of the rounds is the
figure (Python's and SQLite's work, in-process; the kernel's is not counted).

    python benchmarks/instructions.py BASE THIS [--rounds 5]

Operations: `enqueue_many` of 1,000 jobs, `enqueue` of one job (100 calls a round), and a
worker's claim of 50 jobs and their outcome (`claims.take` + `claims.finish`).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

OPS = {"enqueue_many": 1_000, "enqueue": 100, "claim_finish": 50}
WARMUP = 3


def _run_op(op: str, rounds: int) -> None:
    """In the measured process: set up, warm up, then `rounds` rounds of `op`."""
    import offload
    from offload.backends.params import ClaimParams, FinishParams, Outcome
    from offload.core.states import JobState

    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        app = offload.App(f"sqlite:///{tmp}/jobs.db")
        app.migrate()

        @app.task(name="noop")
        def noop() -> None: ...

        per = OPS[op]
        if op == "claim_finish":  # every round's jobs queued beforehand, whatever `rounds`
            noop.enqueue_many([()] * per * (WARMUP + 5))

        def once() -> None:
            if op == "enqueue_many":
                noop.enqueue_many([()] * per)
            elif op == "enqueue":
                for _ in range(per):
                    noop.enqueue()
            else:
                took = app.backend.claims.take(ClaimParams("w", "default", per, 60.0))
                outcomes = [
                    Outcome(j.id, j.attempt, JobState.SUCCEEDED, result="null") for j in took.jobs
                ]
                assert len(outcomes) == per
                app.backend.claims.finish(FinishParams("w", outcomes))

        for _ in range(WARMUP + rounds):
            once()
        app.close()


def _count(tree: str, op: str, rounds: int) -> int:
    """Total instructions of one process running `op` for `rounds` rounds with `tree`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = dict(os.environ, PYTHONPATH=f"{tree}/src:{tree}")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             __file__, "--op", op, "--rounds", str(rounds)],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        found = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
        assert found, "no summary in callgrind's output"
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", help="BASE THIS: source trees")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--op", choices=sorted(OPS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.op:
        _run_op(args.op, args.rounds)
        return
    print("| operation | " + " | ".join(args.trees) + " | ratio |")
    print("|---|" + "---:|" * (len(args.trees) + 1))
    for op, per in OPS.items():
        figures = []
        for tree in args.trees:
            total = _count(tree, op, args.rounds) - _count(tree, op, 0)
            figures.append(total / (per * args.rounds))
        ratio = figures[-1] / figures[0]
        cells = " | ".join(f"{f:,.0f}" for f in figures)
        print(f"| {op} ({per:,} jobs a round) | {cells} | {ratio:.3f} |", flush=True)


if __name__ == "__main__":
    main()
