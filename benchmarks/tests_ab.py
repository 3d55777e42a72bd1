"""Test-suite time, base tree against this one: the same pytest arguments run in each tree in
turn (base, this, base, this, ...), so the machine's load moves both alike.

    python benchmarks/tests_ab.py /tmp/base-X --rounds 3 -- tests/conformance -k postgres
    python benchmarks/tests_ab.py . --base-env PYTHONDONTWRITEBYTECODE=1 -- tests/cli

Each run is `python -m pytest -n 0 -p no:cacheprovider --durations=0 -q ARGS` from the tree's
root with the tree's own `src` first on the path (PostgreSQL required, as in CI), plus the
environment settings given for its side (`NAME=` unsets NAME). Per round it states the run's
wall seconds, the CPU seconds of pytest and every process it waited for (not a PostgreSQL
server's), and the summed setup, call and teardown seconds pytest reported; then, per
figure, the median of this tree's values over the base tree's.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(ROOT))

from benchmarks._rounds import ratios, spread  # noqa: E402
from benchmarks.procinfo import load_average  # noqa: E402

#: One line of `--durations=0`: seconds, phase, node id.
DURATION = re.compile(r"^\s*([\d.]+)s (setup|call|teardown)\s+\S+", re.MULTILINE)
FIGURES = ("wall", "cpu", "setup", "call", "teardown")


class PytestFailed(RuntimeError):
    """A measured run did not pass: its figures would compare unlike work."""

    def __init__(self, tree: Path, code: int, tail: str) -> None:
        super().__init__(f"pytest in {tree} exited with {code}:\n{tail}")
        self.tree = tree
        self.code = code


def run(tree: Path, args: list[str], settings: list[str]) -> dict[str, float]:
    """One pytest run in `tree` with the environment `settings`: its wall and CPU seconds and
    summed phase seconds."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join((str(tree / "src"), str(tree))),
        OFFLOAD_REQUIRE_POSTGRES="1",
    )
    for setting in settings:
        name, _, value = setting.partition("=")
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider"]
    started = time.monotonic()
    done = subprocess.run(
        [*cmd, "--durations=0", "--durations-min=0", "-q", *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    figures = {"wall": time.monotonic() - started, "cpu": cpu}
    figures.update(setup=0.0, call=0.0, teardown=0.0)
    if done.returncode != 0:
        raise PytestFailed(tree, done.returncode, done.stdout[-3000:])
    for seconds, phase in DURATION.findall(done.stdout):
        figures[phase] += float(seconds)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the base tree (e.g. a `git archive` export)")
    parser.add_argument("--rounds", type=int, default=3)
    for side in ("base", "this"):
        parser.add_argument(
            f"--{side}-env",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help=f"an environment setting of the {side} tree's runs (NAME= unsets it)",
        )
    parser.add_argument("pytest_args", nargs="+", help="after --: what pytest runs")
    args = parser.parse_args()
    trees = {"base": args.base.resolve(), "this": ROOT}
    print(f"load average before: {load_average()}")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for n in range(args.rounds):
        for name, tree in trees.items():
            settings = args.base_env if name == "base" else args.this_env
            runs[name].append(run(tree, args.pytest_args, settings))
            shown = " ".join(f"{k} {v:.1f}" for k, v in runs[name][-1].items())
            print(f"round {n + 1} {name}: {shown}", flush=True)
    print(f"load average after: {load_average()}")
    for figure in FIGURES:
        this = [r[figure] for r in runs["this"]]
        base = [r[figure] for r in runs["base"]]
        if all(base):
            print(f"{figure}: this / base per round {spread(ratios(this, base))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
