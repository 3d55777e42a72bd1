"""The rows of the table: which adapter, storage and interpreter each one uses, and what an
acknowledged enqueue survives there. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALL_WORKLOADS = ("enqueue_one", "batch100", "batch1000", "drain", "latency", "scale")
ENQUEUE_ONLY = ("enqueue_one", "batch100", "batch1000")
NO_BATCH = ("enqueue_one", "drain", "latency", "scale")  # the system has no batch API
#: offload's rows also enqueue from many producers at once: 32 threads and 500 coroutines of
#: one process (group commit), and 8 processes (commits shared by the database, if at all).
OFFLOAD_WORKLOADS = (*ALL_WORKLOADS, "threads32", "async500", "procs8")
#: The rows of offload's other executors: a drain and the start latency.
EXECUTOR_WORKLOADS = ("drain", "latency")
#: Every workload a row can name (what `--workloads` accepts).
WORKLOADS = OFFLOAD_WORKLOADS


@dataclass(frozen=True)
class System:
    key: str
    label: str
    module: str  # benchmarks.peers.adapters.<module>
    variant: str
    storage: str  # sqlite | pg | redis | none
    venv: str  # offload | peers
    durable: str  # short: does an acknowledged enqueue survive power loss?
    note: str  # what an acknowledged enqueue survives, and a worker killed mid-job
    workloads: tuple[str, ...] = ALL_WORKLOADS
    aof: str = ""  # Redis appendfsync for this row
    reference: str = "offload-sqlite"  # the offload row its ratios are taken against
    src: str = ""  # run offload from this source tree instead of the working tree (--base)


_REDIS_EVERYSEC = (
    "Redis AOF everysec: the enqueue is in the OS page cache when acknowledged (survives a "
    "Redis crash), fsynced within about 1 s (power loss or an OS crash loses up to the last "
    "second or two)"
)
_REDIS_ALWAYS = "Redis AOF always: fsync before the reply (survives power loss)"


def _row(key: str, label: str, adapter: str, storage: str, durable: str, note: str,
         **more: Any) -> System:  # fmt: skip
    """adapter is "module" or "module:variant" (offload: "offload:<backend>[:<executor>]");
    peers run in the peers' venv."""
    module, _, variant = adapter.partition(":")
    venv = (
        "offload"
        if module in ("offload", "handoff", "jobrow")
        or adapter in ("raw:sqlite", "raw:pg", "raw:disk")
        else "peers"
    )
    return System(key, label, module, variant, storage, venv, durable, note, **more)


_PG = {"reference": "offload-pg"}
_EVERYSEC = {"aof": "everysec"}
_RAW = {"workloads": ENQUEUE_ONLY}
_NO = "no (<=1 s)"

SYSTEMS: tuple[System, ...] = (
    _row("offload-sqlite", "offload (SQLite)", "offload:sqlite", "sqlite", "yes",
         "committed (SQLite WAL, synchronous=FULL: fsync of the WAL) before enqueue() "
         "returns: survives a crash and power loss; a worker killed mid-job: its lease "
         "expires and the job runs again", workloads=OFFLOAD_WORKLOADS),
    _row("offload-pg", "offload (PostgreSQL)", "offload:pg", "pg", "yes",
         "committed (fsync=on, synchronous_commit=on) before enqueue() returns: survives a "
         "crash and power loss; a worker killed mid-job: lease expiry, runs again",
         workloads=OFFLOAD_WORKLOADS, **_PG),
    # offload's other executors (the worker's --executor; the rows above use process).
    *(
        _row(f"offload-{db}-{ex}", f"offload ({name}), {ex} executor", f"offload:{db}:{ex}",
             db, "yes", f"as offload ({name}); the worker runs jobs with --executor {ex}",
             workloads=EXECUTOR_WORKLOADS, reference=f"offload-{db}")
        for db, name in (("sqlite", "SQLite"), ("pg", "PostgreSQL"))
        for ex in ("thread", "async")
    ),
    _row("huey-sqlite", "Huey (SQLite)", "huey:sqlite", "sqlite", "yes",
         "autocommit INSERT in WAL mode with SQLite's default synchronous (FULL here, read "
         "back from its connection): survives power loss; the consumer deletes the row when "
         "it dequeues, so a worker killed mid-job loses the job", workloads=NO_BATCH),
    _row("huey-redis", "Huey (Redis)", "huey:redis", "redis", _NO,
         _REDIS_EVERYSEC + "; dequeued by a pop: a worker killed mid-job loses the job",
         workloads=NO_BATCH, **_EVERYSEC),
    _row("dramatiq", "Dramatiq (Redis)", "dramatiq", "redis", _NO,
         _REDIS_EVERYSEC + "; acked after the job: a killed worker's messages are requeued",
         workloads=NO_BATCH, **_EVERYSEC),
    _row("rq-simple", "RQ, SimpleWorker (Redis)", "rq:simple", "redis", _NO,
         _REDIS_EVERYSEC + "; a worker killed mid-job: the job is moved to the failed "
         "registry when its worker's heartbeat lapses, not run again", **_EVERYSEC),
    _row("rq-fork", "RQ, default Worker: fork per job (Redis)", "rq:fork", "redis", _NO,
         "as RQ SimpleWorker (enqueue is the same code: see that row)",
         workloads=("drain", "latency", "scale"), **_EVERYSEC),
    _row("celery", "Celery prefork (Redis)", "celery", "redis", _NO,
         _REDIS_EVERYSEC + "; acks early (on receipt): a worker killed mid-job loses the job",
         **_EVERYSEC),
    _row("arq", "arq (Redis)", "arq", "redis", _NO,
         _REDIS_EVERYSEC + "; a job of a killed worker runs again when its in-progress key "
         "expires", workloads=NO_BATCH, **_EVERYSEC),
    _row("procrastinate", "procrastinate (PostgreSQL)", "procrastinate", "pg", "yes",
         "committed INSERT (same durable server): survives power loss; a worker killed "
         "mid-job leaves the job 'doing' until stalled jobs are retried", **_PG),
    _row("pgqueuer", "pgqueuer (PostgreSQL)", "pgqueuer", "pg", "yes",
         "committed INSERT into logged tables (same durable server): survives power loss; a "
         "killed worker's picked job is picked again after heartbeat_timeout (30 s)", **_PG),
    # The Redis-based systems again with every write fsynced before Redis replies: the rows
    # whose acknowledged enqueue is durable. The enqueue figures are the ones it changes.
    _row("huey-redis:always", "Huey (Redis), AOF always", "huey:redis", "redis", "yes",
         _REDIS_ALWAYS, aof="always", workloads=("enqueue_one",)),
    _row("dramatiq:always", "Dramatiq (Redis), AOF always", "dramatiq", "redis", "yes",
         _REDIS_ALWAYS, aof="always", workloads=("enqueue_one",)),
    _row("rq:always", "RQ (Redis), AOF always", "rq:simple", "redis", "yes",
         _REDIS_ALWAYS, aof="always", **_RAW),
    _row("celery:always", "Celery (Redis), AOF always", "celery", "redis", "yes",
         _REDIS_ALWAYS, aof="always", **_RAW),
    _row("arq:always", "arq (Redis), AOF always", "arq", "redis", "yes",
         _REDIS_ALWAYS, aof="always", workloads=("enqueue_one",)),
    # The storage's own limits on this disk (benchmarks/peers/adapters/raw.py).
    _row("raw-sqlite", "raw SQLite INSERT (WAL, synchronous=FULL)", "raw:sqlite", "sqlite",
         "yes", "one row per commit; batch: rows per commit", **_RAW),
    _row("raw-pg", "raw PostgreSQL INSERT (fsync on)", "raw:pg", "pg", "yes",
         "one autocommit INSERT; batch: executemany in one transaction; 8 processes: one "
         "connection each (the server's own group commit)",
         workloads=(*ENQUEUE_ONLY, "procs8"), **_PG),
    _row("raw-redis", "raw Redis LPUSH, AOF everysec", "raw:redis", "redis", _NO,
         "one LPUSH; batch: one LPUSH of all values", **_RAW, **_EVERYSEC),
    _row("raw-redis:always", "raw Redis LPUSH, AOF always", "raw:redis", "redis", "yes",
         "one LPUSH; batch: one LPUSH of all values", aof="always", **_RAW),
    _row("raw-disk", "raw disk: write + fdatasync", "raw:disk", "none", "yes",
         "32 bytes + fdatasync per row; batch: one write + one fdatasync", **_RAW),
    # offload's own statements and schema on a bare connection (adapters/jobrow.py).
    _row("jobrow-sqlite", "offload's job row, bare (SQLite)", "jobrow:sqlite", "sqlite", "yes",
         "offload's INSERT statements, no offload Python", **_RAW),
    _row("jobrow-pg", "offload's job row, bare (PostgreSQL)", "jobrow:pg", "pg", "yes",
         "offload's INSERT statements, no offload Python", **_RAW, **_PG),
    # The least a separate worker process and job process can do (adapters/handoff.py).
    _row("floor-sqlite", "floor: SQLite commit, wake, claim, hand-off", "handoff:sqlite",
         "sqlite", "yes", "one durable commit, a datagram, one claim, a pipe",
         workloads=("latency",)),
    _row("floor-pg", "floor: PostgreSQL commit+NOTIFY, claim, hand-off", "handoff:pg", "pg",
         "yes", "one durable commit with NOTIFY, one claim, a pipe", workloads=("latency",),
         **_PG),
)  # fmt: skip

BY_KEY = {s.key: s for s in SYSTEMS}
