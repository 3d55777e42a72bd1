"""The cost of `App.authenticate`, the check an API server makes on every request.

Per backend, a fresh database with 1,000 tokens; each round times `--calls` checks of each
variant, taking turns so that the machine's load moves them alike:

* `valid`: a live token: one indexed read by its lookup part, then a SHA-256 compared in
  constant time (its last use is recorded at most once a minute, so no write here);
* `wrong`: a known lookup part with a wrong secret: the same read and comparison;
* `unknown`: a well-formed token whose lookup part is stored nowhere: the read only;
* `malformed`: not a token at all: refused before any database access.

Figures are microseconds per call, medians over the rounds. PostgreSQL runs on a
throwaway server.

    .venv/bin/python benchmarks/authenticate.py [--rounds 5] [--calls 2000] [--backend both]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.pgserver import start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402

import offload  # noqa: E402

TOKENS = 1000


def measure(url: str, rounds: int, calls: int) -> dict[str, list[float]]:
    app = offload.App(url)
    app.migrate()
    made = [app.create_token(f"t{i}", "read") for i in range(TOKENS)]
    valid = made[TOKENS // 2]
    variants = {
        "valid": valid,
        "wrong": valid[:-1] + ("A" if valid[-1] != "A" else "B"),
        "unknown": "offload_000000000000_" + valid.rsplit("_", 1)[1],
        "malformed": "Bearer not-a-token",
    }
    expected = {name: name == "valid" for name in variants}
    timings: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(rounds):
            for name, token in variants.items():
                assert (app.authenticate(token) is not None) == expected[name], name
                started = time.perf_counter()
                for _ in range(calls):
                    app.authenticate(token)
                timings[name].append((time.perf_counter() - started) / calls * 1e6)
    finally:
        app.close()
    return timings


def report(backend: str, timings: dict[str, list[float]]) -> None:
    rounds = len(timings["valid"])
    print(f"{backend}: App.authenticate, us per call (median of {rounds} rounds)")
    for name, runs in timings.items():
        shown = ", ".join(f"{r:.1f}" for r in runs)
        print(f"  {name:<10} {statistics.median(runs):>8.1f}  ({shown})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        if backend == "postgres":
            server = start_postgres()
            try:
                url = fresh_database(server.url, "authenticate")
                report(backend, measure(url, args.rounds, args.calls))
            finally:
                server.stop()
        else:
            with tempfile.TemporaryDirectory() as tmp:
                report(backend, measure(f"sqlite:///{tmp}/auth.db", args.rounds, args.calls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
