"""A cluster of test hosts: a `Network` of namespaces, a throwaway PostgreSQL listening on
its bridge (optionally PgBouncer in front of it), worker processes started inside the hosts,
a producer host, and what the database saw: connections and CPU time.

    with Cluster(["h1", "h2"]) as cluster:
        cluster.start_workers("h1", 1)
        ids = cluster.produce("work", 1000, 0)
        ...

Leaving the block stops every process, PgBouncer, the server and the network, also after
an error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psycopg

import offload
from tests.faults.bouncer import Bouncer
from tests.hosts import ledger
from tests.hosts.netns import Host, Network
from tests.pgserver import PostgresServer, fresh_database, start_postgres

ROOT = Path(__file__).resolve().parents[2]
#: The processes of the hosts import this tree's offload and tests, whatever is installed.
PYTHONPATH = os.pathsep.join((str(Path(offload.__file__).resolve().parents[1]), str(ROOT)))
APP = "tests.hosts.app:app"
PRODUCER = "producer"
#: The application_name of the harness's own sessions, which the connection counts leave out.
HARNESS = "hosts-harness"
_TICK = 100  # clock ticks per second in /proc/PID/stat (USER_HZ)


@dataclass
class Connections:
    """What `pg_stat_activity` showed for the jobs' database, sampled while a run went."""

    samples: int = 0
    most: int = 0
    #: The most seen at once from each client address (through PgBouncer: its own).
    most_by_address: dict[str, int] = field(default_factory=dict)


class Cluster:
    """Hosts named `names` (plus a producer host), one PostgreSQL on their bridge.

    `bouncer` ("transaction" or "session") puts PgBouncer, lending at most `pool_size`
    server connections, between the hosts and the server.
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        log_dir: Path,
        bouncer: str | None = None,
        pool_size: int = 10,
    ) -> None:
        self.names = list(names)
        self.log_dir = log_dir
        self._bouncer_mode = bouncer
        self._pool_size = pool_size
        self.network = Network([*self.names, PRODUCER])
        self.server: PostgresServer | None = None
        self.bouncer: Bouncer | None = None
        self.processes: dict[str, list[subprocess.Popen[bytes]]] = {}
        self.database = ""
        self.url = ""  # the jobs' database, from this machine's side
        self.host_url = ""  # the jobs' database, as the hosts reach it
        self.ledger_url = ""

    def __enter__(self) -> Cluster:
        try:
            self.network.__enter__()
            gateway = self.network.gateway
            self.server = start_postgres(
                also_listen=(gateway,), trust_networks=(self.network.subnet,)
            )
            assert self.server.port is not None
            if self._bouncer_mode is not None:
                self.bouncer = Bouncer(
                    self.server.port,
                    self._bouncer_mode,
                    host=gateway,
                    pool_size=self._pool_size,
                )
            self.use_database("offload_hosts")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop everything this cluster started. Idempotent."""
        for processes in self.processes.values():
            for process in processes:
                if process.poll() is None:
                    process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)
        self.processes.clear()
        if self.bouncer is not None:
            self.bouncer.close()
            self.bouncer = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.network.close()

    def use_database(self, name: str) -> None:
        """From now on the jobs go to a fresh, migrated database `name`, and the runs to a
        fresh ledger beside it (`<name>_ledger`)."""
        assert self.server is not None and self.server.port is not None
        gateway = self.network.gateway
        self.database = name
        url = fresh_database(self.server.url, name)
        self.url = f"{url}?application_name={HARNESS}"
        ledger_url = fresh_database(self.server.url, f"{name}_ledger")
        ledger.create(ledger_url)
        self.ledger_url = ledger_url.replace("127.0.0.1", gateway, 1)
        self.host_url = url.replace("127.0.0.1", gateway, 1)
        if self.bouncer is not None:
            self.host_url = (
                self.host_url.replace(f":{self.server.port}/", f":{self.bouncer.port}/", 1)
                + f"?pool_mode={self.bouncer.mode}"
            )
        app = offload.App(self.url)
        app.migrate()
        app.close()

    def raw_url(self, name: str) -> str:
        """A fresh database `name`, as the hosts reach it directly (never via PgBouncer)."""
        assert self.server is not None
        url = fresh_database(self.server.url, name)
        return url.replace("127.0.0.1", self.network.gateway, 1)

    def stop_workers(self, name: str, timeout: float = 30.0) -> None:
        """SIGTERM the workers of host `name` and wait for them to exit."""
        processes = self.processes.pop(name, [])
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def workers_cpu(self) -> float:
        """CPU seconds the live worker processes have used so far (threads included)."""
        total = 0
        for processes in self.processes.values():
            for process in processes:
                with contextlib.suppress(OSError):
                    stat = Path(f"/proc/{process.pid}/stat").read_text()
                    fields = stat.rsplit(")", 1)[1].split()
                    total += sum(int(f) for f in fields[11:15])
        return total / _TICK

    def host(self, name: str) -> Host:
        return self.network.hosts[name]

    def env(self, name: str) -> dict[str, str]:
        """The environment of a process on host `name`."""
        return dict(
            os.environ,
            OFFLOAD_URL=self.host_url,
            HOSTS_LEDGER=self.ledger_url,
            HOSTS_NAME=name,
            PYTHONPATH=PYTHONPATH,
        )

    def start_workers(
        self,
        name: str,
        count: int,
        *,
        concurrency: int = 4,
        lease: float = 20.0,
        connections: int = 2,
        rescue: float | None = None,
        prefetch: int | None = None,
    ) -> list[subprocess.Popen[bytes]]:
        """Start `count` thread-executor workers inside host `name`.

        They are `offload worker` (the CLI), unless `rescue` or `prefetch` is given, which
        the CLI does not set: then tests.apps.run_worker, the same `Worker` with those two.
        """
        host = self.host(name)
        env = self.env(name)
        if rescue is None and prefetch is None:
            argv = [
                sys.executable,
                "-m",
                "offload",
                "--app",
                APP,
                "worker",
                "--executor",
                "thread",
                "--concurrency",
                str(concurrency),
                "--lease",
                str(lease),
                "--connections",
                str(connections),
                "--log-level",
                "warning",
            ]
        else:
            argv = [sys.executable, "-m", "tests.apps.run_worker"]
            env.update(
                WORKER_APP=APP,
                WORKER_EXECUTOR="thread",
                WORKER_CONCURRENCY=str(concurrency),
                WORKER_LEASE=str(lease),
                WORKER_CONNECTIONS=str(connections),
                WORKER_RESCUE=str(rescue if rescue is not None else 5.0),
            )
            if prefetch is not None:
                env["WORKER_PREFETCH"] = str(prefetch)
        started = self.processes.setdefault(name, [])
        for _ in range(count):
            log = (self.log_dir / f"{name}-{len(started)}.log").open("ab")
            started.append(
                subprocess.Popen(host.command(argv), cwd=ROOT, env=env, stdout=log, stderr=log)
            )
            log.close()
        return started[-count:]

    def log(self, name: str) -> str:
        """Everything the workers of host `name` wrote."""
        return "".join(p.read_text() for p in sorted(self.log_dir.glob(f"{name}-*.log")))

    def wait_registered(self, count: int, timeout: float = 60.0) -> None:
        """Wait until `count` workers are registered in the database."""
        app = offload.App(self.url)
        try:
            deadline = time.monotonic() + timeout
            while len(app.workers()) < count:
                self.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{len(app.workers())} of {count} workers registered in {timeout}s"
                    )
                time.sleep(0.2)
        finally:
            app.close()

    def check_alive(self) -> None:
        """Raise if a worker process has exited (with the host's log)."""
        for name, processes in self.processes.items():
            for process in processes:
                code = process.poll()
                if code is not None and code != -signal.SIGKILL:
                    raise RuntimeError(
                        f"a worker of {name} exited with {code}:\n{self.log(name)[-3000:]}"
                    )

    def produce(self, *args: object, timeout: float = 120.0) -> list[int]:
        """Run `python -m tests.hosts.produce ARGS` on the producer host; the job ids."""
        done = subprocess.run(
            self.host(PRODUCER).command(
                [sys.executable, "-m", "tests.hosts.produce", *map(str, args)]
            ),
            cwd=ROOT,
            env=self.env(PRODUCER),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the producer failed:\n{done.stderr.decode()[-3000:]}")
        ids: list[int] = json.loads(done.stdout)
        return ids

    def states(self, ids: list[int]) -> dict[str, int]:
        """How many of `ids` are in each state now (one query, however many ids)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT state, count(*) FROM offload_jobs WHERE id = ANY(%s) GROUP BY state",
                (ids,),
            ).fetchall()
        return {str(state): int(count) for state, count in rows}

    def sample_connections(self, stop: threading.Event, seen: Connections) -> None:
        """Until `stop`, sample the sessions on the jobs' database every 50 ms into `seen`
        (the hosts' and PgBouncer's, not the harness's own)."""
        assert self.server is not None
        with psycopg.connect(self.server.url, autocommit=True) as conn:
            while not stop.wait(0.05):
                rows = conn.execute(
                    "SELECT coalesce(host(client_addr), 'local') FROM pg_stat_activity"
                    " WHERE datname = %s AND backend_type = 'client backend'"
                    " AND application_name <> %s",
                    (self.database, HARNESS),
                ).fetchall()
                by_address = Counter(str(address) for (address,) in rows)
                seen.samples += 1
                seen.most = max(seen.most, len(rows))
                for address, count in by_address.items():
                    seen.most_by_address[address] = max(seen.most_by_address.get(address, 0), count)

    def database_cpu(self) -> float:
        """CPU seconds the server's processes have used so far: the postmaster, its live
        children and (through the postmaster's cutime/cstime) those that ended."""
        assert self.server is not None and self.server.data_dir is not None
        postmaster = int((self.server.data_dir / "postmaster.pid").read_text().split()[0])
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                pid, parent = int(stat.parent.name), int(fields[1])
                if pid == postmaster:
                    total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
                elif parent == postmaster:
                    total += int(fields[11]) + int(fields[12])
        return total / _TICK
