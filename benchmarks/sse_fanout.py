"""SSE fan-out: many clients on one event stream of `offload serve` while jobs complete.

`--clients` clients (raw asyncio sockets, in this process) follow `GET /v1/events?queue=
default` of one `offload serve` (uvicorn) on loopback. A producer process enqueues no-op
jobs at `--rate` jobs/s (`enqueue_many` every 20 ms) for `--seconds`, and a worker process
(thread executor) drains them, so each job puts three events on the stream: enqueued,
started, succeeded.

Figures: delivery latency p50/p99 (the event's `at`, stamped by the database in the
transaction that stored it, to its arrival at a client: both on this machine's clock), read
by `--sampled` (5) of the clients, which find every event's `at` (the others only
count events, so that the clients' own CPU does not swamp the machine); every client's
count against the events stored; the CPU seconds of the server and of the clients per
second of the run; and the server's RSS (VmRSS sampled every 0.2 s: start, peak, end). The server,
worker, producer and clients share the machine's cores. PostgreSQL runs on a throwaway
server that waits for its WAL flush at commit (`durable_commits`).

    .venv/bin/python benchmarks/sse_fanout.py [--clients 500] [--rate 1000] [--seconds 10]
        [--backend both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import httpx  # noqa: E402
from tests.pgserver import start_postgres  # noqa: E402
from tests.pgserver.databases import fresh_database  # noqa: E402

from benchmarks.procinfo import kb  # noqa: E402

#: The `at` field of an event's data line.
_AT = re.compile(rb'"at":"([^"]+)"')

APP = """
import os
import offload
app = offload.App(os.environ["OFFLOAD_URL"])
@app.task(name="t")
def t() -> None: ...
"""

PRODUCER = r"""
import sys, time
from offload.app import Call
import bench_sse_app
app = bench_sse_app.app
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
tick = 0.02
batch = max(1, round(rate * tick))
started = time.monotonic()
sent = 0
while time.monotonic() - started < seconds:
    app.enqueue_many("t", [Call((), {})] * batch)
    sent += batch
    delay = started + sent / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
print(sent)
"""


def _env(tmp: str, url: str) -> dict[str, str]:
    path = os.pathsep.join((tmp, str(ROOT / "src"), str(ROOT)))
    return dict(os.environ, PYTHONPATH=path, OFFLOAD_URL=url)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Client:
    """One stream reader: counts events; a sampled one also decodes each event's `at`."""

    def __init__(self, sampled: bool) -> None:
        self.sampled = sampled
        self.events = 0
        self.reconnects = 0
        self.latencies: list[float] = []
        self.connected = asyncio.Event()

    async def follow(self, port: int, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /v1/events?queue=default HTTP/1.1\r\nHost: bench\r\n"
            b"Accept: text/event-stream\r\n\r\n"
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        self.connected.set()
        pending = tail = b""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                reading = asyncio.ensure_future(reader.read(1 << 16))
                done, _ = await asyncio.wait({reading, stopping}, return_when="FIRST_COMPLETED")
                if reading not in done:
                    reading.cancel()
                    return
                chunk = reading.result()
                if not chunk:
                    return
                arrived = time.time()
                seen = tail + chunk  # a mark split between two reads is counted once
                self.events += seen.count(b"\nid: ")
                self.reconnects += seen.count(b"\nevent: reconnect")
                tail = seen[-4:]
                if self.sampled:  # every whole line's `at`, found by a C-level scan
                    text = pending + chunk
                    cut = text.rfind(b"\n") + 1
                    pending = text[cut:]
                    for at in _AT.findall(text, 0, cut):
                        self.latencies.append(
                            arrived - datetime.fromisoformat(at.decode()).timestamp()
                        )
        finally:
            stopping.cancel()
            writer.close()


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _watch_rss(pid: int, stop: asyncio.Event, samples: list[float]) -> None:
    while not stop.is_set():
        samples.append(kb(f"/proc/{pid}/status", "VmRSS") / 1024)
        await asyncio.sleep(0.2)


async def _run_clients(
    port: int, clients: int, sampled: int, load: Any, server_pid: int
) -> tuple[list[Client], list[float], int, tuple[float, float, float]]:
    """Connect every client, run `load` (which returns the jobs it stored once done), and
    read until every client has every event (or two minutes passed)."""
    stop = asyncio.Event()
    readers = [Client(i < sampled) for i in range(clients)]
    tasks = [asyncio.create_task(c.follow(port, stop)) for c in readers]
    rss: list[float] = []
    watcher = asyncio.create_task(_watch_rss(server_pid, stop, rss))
    await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in readers)), 120)
    started, server_cpu, client_cpu = (
        time.monotonic(),
        _cpu_seconds(server_pid),
        time.process_time(),
    )
    expected = 3 * await asyncio.to_thread(load)
    deadline = time.monotonic() + 120
    while sum(c.events for c in readers) < expected * clients and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    wall = time.monotonic() - started
    cpu = (_cpu_seconds(server_pid) - server_cpu, time.process_time() - client_cpu, wall)
    stop.set()
    await asyncio.gather(*tasks, watcher)
    return readers, rss, expected, cpu


def measure(url: str, clients: int, sampled: int, rate: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "bench_sse_app.py").write_text(APP)
        env = _env(tmp, url)
        cli = [sys.executable, "-m", "offload.cli", "--app", "bench_sse_app:app"]
        subprocess.run([*cli, "migrate"], env=env, cwd=tmp, check=True, capture_output=True)
        port = _free_port()
        quiet = subprocess.DEVNULL
        server = subprocess.Popen(
            [*cli, "serve", "--port", str(port)], env=env, cwd=tmp, stdout=quiet, stderr=quiet
        )
        work = ["worker", "--executor", "thread", "--concurrency", "8", "--log-level", "error"]
        worker = subprocess.Popen([*cli, *work], env=env, cwd=tmp, stdout=quiet, stderr=quiet)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("offload serve did not start") from None
                    time.sleep(0.05)
            rss_start = kb(f"/proc/{server.pid}/status", "VmRSS") / 1024

            def load() -> int:
                producer = subprocess.run(
                    [sys.executable, "-c", PRODUCER, str(rate), str(seconds)],
                    env=env,
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                return int(producer.stdout.split()[-1])

            readers, rss, expected, cpu = asyncio.run(
                _run_clients(port, clients, sampled, load, server.pid)
            )
            hwm = kb(f"/proc/{server.pid}/status", "VmHWM") / 1024
        finally:
            for process in (worker, server):
                process.terminate()
                process.wait(60)
    latencies = sorted(x for c in readers for x in c.latencies)
    counts = [c.events for c in readers]
    return {
        "expected": expected,
        "complete": sum(1 for n in counts if n == expected),
        "min_events": min(counts),
        "reconnects": sum(c.reconnects for c in readers),
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "max": latencies[-1] * 1000,
        "samples": len(latencies),
        "rss_start": rss_start,
        "rss_peak": max(rss),
        "rss_end": rss[-1],
        "hwm": hwm,
        "server_cpu": cpu[0] / cpu[2],
        "client_cpu": cpu[1] / cpu[2],
        "server_us": cpu[0] / (expected * clients) * 1e6,
    }


def report(backend: str, args: argparse.Namespace, r: dict[str, Any]) -> None:
    print(
        f"{backend}: {args.clients} SSE clients on /v1/events?queue=default, "
        f"{args.rate:,.0f} jobs/s for {args.seconds:g} s ({r['expected']:,} events each)"
    )
    print(
        f"  delivery latency ms: p50 {r['p50']:.1f}  p99 {r['p99']:.1f}  max {r['max']:.1f}  "
        f"({r['samples']:,} events read by {args.sampled} clients)"
    )
    print(
        f"  clients with every event: {r['complete']}/{args.clients} (fewest "
        f"{r['min_events']:,}); reconnect events: {r['reconnects']}"
    )
    print(
        f"  CPU per second of the run: server {r['server_cpu']:.2f}, "
        f"clients {r['client_cpu']:.2f} (server {r['server_us']:.2f} us per event delivered); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"  server RSS MiB: start {r['rss_start']:.0f}  peak {r['rss_peak']:.0f}  "
        f"end {r['rss_end']:.0f}  (VmHWM {r['hwm']:.0f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--sampled", type=int, default=5)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        if backend == "postgres":
            pg = start_postgres(durable_commits=True)
            try:
                url = fresh_database(pg.url, "sse_fanout")
                result = measure(url, args.clients, args.sampled, args.rate, args.seconds)
            finally:
                pg.stop()
        else:
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{tmp}/bench.db"
                result = measure(url, args.clients, args.sampled, args.rate, args.seconds)
        report(backend, args, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
