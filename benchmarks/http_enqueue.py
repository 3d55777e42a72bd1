"""Enqueue over the HTTP API against direct enqueue through the App.

Four variants, each a fresh process and database, taking turns within every round so that
the machine's load moves them alike:

* `direct`: `App.enqueue` by task name, one job per call (each a durable commit);
* `http`: one `POST /v1/jobs` per job to `offload serve` (uvicorn) on loopback, from one
  keep-alive httpx client, waiting for each answer;
* `client`: the same through `offload.client.Client.enqueue`;
* `client_batch`: `POST /v1/jobs:batch` with `--batch` jobs per request, through
  `Client.enqueue_many`.

Each run enqueues `--jobs` jobs after 200 to warm up; figures are jobs/s, medians over the
rounds, and ratios to `direct` (medians of the per-round ratios). The server and the client
share the machine's cores. PostgreSQL runs on a throwaway server that waits for its WAL
flush at commit (`durable_commits`).

    .venv/bin/python benchmarks/http_enqueue.py [--rounds 3] [--jobs 2000] [--backend both]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import httpx  # noqa: E402
from tests.pgserver import start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402

import offload  # noqa: E402
from offload.client import Client  # noqa: E402

VARIANTS = ("direct", "http", "client", "client_batch")

APP = """
import os
import offload
app = offload.App(os.environ["OFFLOAD_URL"])
@app.task(name="t")
def t(x: int) -> None: ...
"""

DIRECT = r"""
import sys, time
import bench_http_app
app = bench_http_app.app
app.migrate()
n = int(sys.argv[1])
for i in range(-200, 0):
    app.enqueue("t", [i])
started = time.perf_counter()
for i in range(n):
    app.enqueue("t", [i])
print(f"{n / (time.perf_counter() - started):.1f}")
"""


def _env(tmp: str, url: str) -> dict[str, str]:
    path = os.pathsep.join((tmp, str(ROOT / "src"), str(ROOT)))
    return dict(os.environ, PYTHONPATH=path, OFFLOAD_URL=url)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def over_http(tmp: str, url: str, jobs: int, variant: str, batch: int) -> float:
    """Jobs/s through `offload serve` in `variant`: one job per request, or `batch`."""
    env = _env(tmp, url)
    subprocess.run(
        [sys.executable, "-m", "offload.cli", "--app", "bench_http_app:app", "migrate"],
        env=env,
        cwd=tmp,
        check=True,
        capture_output=True,
    )
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "offload.cli", "serve", "bench_http_app:app", "--port", str(port)],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as client, Client(base, timeout=60) as ours:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("offload serve did not start") from None
                    time.sleep(0.05)

            def send(first: int, count: int) -> None:
                if variant == "http":
                    for i in range(first, first + count):
                        answer = client.post("/v1/jobs", json={"task": "t", "args": [i]})
                        assert answer.status_code == 202, answer.text
                elif variant == "client":
                    for i in range(first, first + count):
                        ours.enqueue("t", [i])
                else:
                    for start in range(first, first + count, batch):
                        end = min(start + batch, first + count)
                        ours.enqueue_many("t", [offload.call(i) for i in range(start, end)])

            send(-200, 200)
            started = time.perf_counter()
            send(0, jobs)
            return jobs / (time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(60)


def run(tmp: str, url: str, variant: str, jobs: int, batch: int) -> float:
    if variant == "direct":
        out = subprocess.run(
            [sys.executable, "-c", DIRECT, str(jobs)],
            env=_env(tmp, url),
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.split()[-1])
    return over_http(tmp, url, jobs, variant, batch)


def measure(
    backend: str, rounds: int, jobs: int, batch: int, pg_url: str | None
) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "bench_http_app.py").write_text(APP)
        for n in range(rounds):
            for i, variant in enumerate(VARIANTS):
                if backend == "sqlite":
                    url = f"sqlite:///{tmp}/bench_{n}_{i}.db"
                else:
                    assert pg_url is not None
                    url = fresh_database(pg_url, f"http_{n}_{i}")
                rates[variant].append(run(tmp, url, variant, jobs, batch))
                print(
                    f"{backend} round {n + 1} {variant}: {rates[variant][-1]:,.0f}/s",
                    file=sys.stderr,
                )
    return rates


def report(backend: str, rates: dict[str, list[float]], batch: int) -> None:
    print(f"{backend}: enqueue, jobs/s (median of {len(rates['direct'])} rounds; batch {batch})")
    for variant in VARIANTS:
        runs = ", ".join(f"{r:,.0f}" for r in rates[variant])
        ratios = [v / d for v, d in zip(rates[variant], rates["direct"], strict=True)]
        print(
            f"  {variant:<12} {statistics.median(rates[variant]):>8,.0f}  "
            f"ratio {statistics.median(ratios):.3f} (min {min(ratios):.3f}, "
            f"max {max(ratios):.3f})  ({runs})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = {}
    for backend in backends:
        if backend == "postgres":
            server = start_postgres(durable_commits=True)
            try:
                results[backend] = measure(backend, args.rounds, args.jobs, args.batch, server.url)
            finally:
                server.stop()
        else:
            results[backend] = measure(backend, args.rounds, args.jobs, args.batch, None)
    for backend, rates in results.items():
        report(backend, rates, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
