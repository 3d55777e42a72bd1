"""Interleaved A/B of drain throughput without and with a worker's Prometheus metrics.

Each round drains `--jobs` queued no-op jobs once per arm, the arms in a rotated order, each
in a fresh `python -m benchmarks.runner drain` process (2 children) on a fresh database:

* off: no observer (a worker without --metrics-port);
* on: `WorkerMetrics` as the observer and its HTTP server listening, as
  `offload worker --metrics-port` runs (nobody scrapes it during the drain).

It prints, per backend, each arm's median rate and the median of the per-round ratios
on/off (logging_ab.py's measure, with these arms).

    .venv/bin/python benchmarks/metrics_ab.py [--rounds 5] [--jobs 20000] [--backend both]
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.pgserver import start_postgres  # noqa: E402

from benchmarks.logging_ab import measure  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    arms = {
        "off": ["--log-level", "WARNING"],
        "on": ["--log-level", "WARNING", "--metrics-port", str(free_port())],
    }
    if args.backend in ("sqlite", "both"):
        measure("sqlite", None, args, arms)
    if args.backend in ("postgres", "both"):
        server = start_postgres()
        try:
            measure("postgres", server, args, arms)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
