"""The table (Markdown, so it pastes into RESULTS.md as it is), its notes, and the targets of
issue 20 computed from the same run. Standard library only."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.peers.systems import System

Points = dict[str, list[dict[str, Any]]]


def brief(result: dict[str, Any]) -> str:
    """One progress line for a point."""
    if not result.get("ok"):
        partial = result.get("partial")
        extra = f" (partial {partial:,.0f}/s)" if partial else ""
        return f"{result.get('error')}{extra}: {str(result.get('detail', ''))[:200]}"
    if "p99" in result:
        return f"p50 {result['p50']:.2f} ms, p99 {result['p99']:.2f} ms"
    if "runs" in result:
        return ", ".join(f"{r['steady']:,.0f}/s" for r in result["runs"])
    return f"{result['value']:,.0f}/s in {result.get('wall', 0):.1f}s"


def _num(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"
    if unit == "MB":
        return f"{value:.0f}"
    return f"{value:,.0f}"


def values(points: Points, column: str) -> list[float]:
    """Every successful run's figure for one column."""
    if column == "scale_large":
        return [r["steady"] for p in points.get(column, []) if p.get("ok") for r in p["runs"]]
    kind, _, key = column.partition(".")
    out = []
    for p in points.get(kind, []):
        if p.get("ok"):
            found: Any = p
            for part in (key or "value").split("."):
                found = found[part]
            out.append(float(found))
    return out


def _failure(points: Points, kind: str) -> str:
    failed = [p for p in points.get(kind, []) if not p.get("ok")]
    if not failed:
        return ""
    first = failed[0]
    text = str(first.get("error", "failed"))
    if first.get("partial"):
        text += f" (~{first['partial']:,.0f}/s)"
    return text


def cell(points: Points, column: str, unit: str, ref: Points | None) -> str:
    found = values(points, column)
    kind = column.split(".", maxsplit=1)[0]
    if not found:
        return _failure(points, kind) or "-"
    median = statistics.median(found)
    text = _num(median, unit)
    if len(found) > 1:
        text += f" ({_num(min(found), unit)}-{_num(max(found), unit)})"
    if ref is not None:
        ref_found = values(ref, column)
        if ref_found and statistics.median(ref_found) > 0:
            text += f" x{median / statistics.median(ref_found):.2f}"
    failed = len(points.get(kind, [])) - len(found) if column != "scale_large" else 0
    if failed > 0:
        text += f" [{failed} run(s) {_failure(points, kind)}]"
    return text


def scale_ratio(points: Points) -> tuple[float | None, str]:
    small, large = values(points, "scale_small"), values(points, "scale_large")
    if not small:
        return None, _failure(points, "scale_small") or "-"
    if not large:
        return None, _failure(points, "scale_large") or "skipped"
    ratio = statistics.median(large) / statistics.median(small)
    text = (
        f"{ratio:.2f} ({_num(statistics.median(large), '')} / "
        f"{_num(statistics.median(small), '')}/s)"
    )
    return ratio, text


COLUMNS = (
    ("enqueue_one", "enqueue 1/call, jobs/s", ""),
    ("batch100", "batch of 100, jobs/s", ""),
    ("batch1000", "batch of 1,000, jobs/s", ""),
    ("threads32", "32 threads 1/call, jobs/s", ""),
    ("async500", "500 coroutines 1/call, jobs/s", ""),
    ("procs8", "8 processes 1/call, jobs/s", ""),
    ("drain", "drain 2 procs, jobs/s", ""),
    ("latency.p50", "start p50, ms", "ms"),
    ("latency.p99", "start p99, ms", "ms"),
)


def render(dump: dict[str, Any], systems: list[System]) -> str:
    sizes = dump["sizes"]
    all_points: dict[str, Points] = dump["points"]
    m = dump["machine"]
    lines = [
        f"machine: {m['machine']}; files in {m['tmp']}",
        f"python: {m['python']}",
        f"repository: {m['repository']}",
        f"load average: {dump.get('load_average', '?')}; took {dump.get('minutes', 0):.1f} min",
        "Redis (the rig's own): "
        + ", ".join(f"{k}={v}" for k, v in dump["redis"].items() if k != "url"),
        "PostgreSQL (the rig's own): "
        + ", ".join(f"{k}={v}" for k, v in dump["postgres"].items() if k != "url"),
        f"sizes: enqueue {sizes['enqueue']:,} jobs one per call; batches: {sizes['batch']:,} "
        f"jobs; drain {sizes['drain']:,} queued jobs; latency {sizes['latency']} jobs at "
        f"{sizes['rate']:g}/s; scale: the first {sizes['scale_small']:,} jobs with "
        f"{sizes['scale_large']:,} vs {sizes['scale_small']:,} queued; "
        f"{sizes['repeat']} run(s) per point: median (min-max)",
        "",
    ]
    header = ["system", *(c[1] for c in COLUMNS), "scale: rate 1M / 10k", "idle RSS / PSS, MB"]
    header.append("ack durable?")
    if sizes["scale_large"] != 1_000_000:
        header[-3] = f"scale: {sizes['scale_large']:,} / {sizes['scale_small']:,}"
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for system in systems:
        points = all_points.get(system.key, {})
        ref = all_points.get(system.reference) if system.reference != system.key else None
        row = [system.label]
        for column, _, unit in COLUMNS:
            kind = column.split(".", maxsplit=1)[0]
            if kind not in system.workloads:
                enqueues = "enqueue_one" in system.workloads
                row.append("n/a" if kind.startswith("batch") and enqueues else "")
                continue
            row.append(cell(points, column, unit, ref))
        if f"{system.key} scale" in dump["notes"]:
            row.append("skipped (notes)")
        elif "scale" in system.workloads:
            row.append(scale_ratio(points)[1])
        else:
            row.append("")
        if "latency" in system.workloads:
            rss = values(points, "latency.idle.main_rss")
            pss = values(points, "latency.idle.tree_pss")
            row.append(
                f"{statistics.median(rss):.0f} / {statistics.median(pss):.0f}" if rss else "-"
            )
        else:
            row.append("")
        row.append(system.durable)
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", *notes(dump, systems), "", *targets(all_points, dump.get("postgres", {}))]
    return "\n".join(lines)


def notes(dump: dict[str, Any], systems: list[System]) -> list[str]:
    out = [
        "Ratios (xN) are to offload on the same kind of storage: PostgreSQL rows to offload "
        "(PostgreSQL), the others to offload (SQLite); for latency a ratio above 1 is slower.",
        "drain: from the start of the worker processes to the start of the last job (each "
        "job records its start time.time() in a per-process file); latency: that start minus "
        "the producer's time.time() just before the enqueue call (one host clock); idle RSS: "
        "the first worker process after warm-up and 1 s idle / PSS summed over the whole "
        "worker process tree. Blank: not measured for that row; n/a: no batch API.",
        "scale: after each fill, on PostgreSQL the rig runs VACUUM (ANALYZE) on the system's "
        "database, every PostgreSQL row alike (what autovacuum does within a minute: a table "
        "never analyzed has no statistics, and a claim planned without them can read the "
        "whole backlog; see benchmarks/peers/harness.py); SQLite and Redis rows run as filled.",
        "",
        "How each system runs (worker = the closest equivalent of 2 processes) and what an "
        "acknowledged enqueue survives:",
    ]
    for system in systems:
        points = dump["points"].get(system.key, {})
        first: dict[str, Any] = next((p for ps in points.values() for p in ps if p.get("ok")), {})
        versions = ", ".join(f"{k} {v}" for k, v in first.get("versions", {}).items())
        settings = ", ".join(f"{k}={v}" for k, v in first.get("settings", {}).items())
        parts = [f"- **{system.label}**" + (f" ({versions})" if versions else "")]
        if not first:
            parts.append("no run succeeded")
        if first.get("worker") and first["worker"] != "-":
            parts.append(f"worker: {first['worker']}")
        if first.get("batch_api"):
            parts.append(f"batch: {first['batch_api']}")
        if settings:
            parts.append(f"settings: {settings}")
        sources = sorted(
            {str(p["settings"]["source"]) for ps in points.values() for p in ps
             if p.get("ok") and "source" in p.get("settings", {})}
        )  # fmt: skip
        if len(sources) > 1:
            parts.append(f"NOTE: the runs measured {len(sources)} versions of src/offload")
        parts.append(f"{'measures' if system.module == 'raw' else 'durability'}: {system.note}")
        scale_note = dump["notes"].get(f"{system.key} scale")
        if scale_note:
            parts.append(f"scale: {scale_note}")
        out.append("; ".join(parts))
    return out


def _median(points: Points, column: str) -> float | None:
    found = values(points, column)
    return statistics.median(found) if found else None


#: The settings under which an acknowledged enqueue survives power loss.
SAFE_SQLITE = {"journal_mode": ("wal",), "synchronous": ("FULL", "EXTRA")}
SAFE_PG = {"fsync": ("on",), "synchronous_commit": ("on", "remote_write", "remote_apply")}
#: The test that kills producers and checks every acknowledged enqueue is stored.
KILL_TEST = "tests/faults/test_group_commit_kill.py"


def targets(all_points: dict[str, Points], postgres: dict[str, str] | None = None) -> list[str]:
    """Every target of issue 20 (they restate issue 6's) as a measured ratio from this run;
    "not measured" names the row and workload the run left out, or how they failed."""
    out = ["Targets of issue 20 (medians of this run):", ""]
    out.append("| target | backend | measured | met? |")
    out.append("|---|---|---|---|")

    def missing(needs: list[tuple[str, str]]) -> str:
        """Why a target has no figure: the (row, workload) pairs without a successful run."""
        why = []
        for key, column in needs:
            kind = column.split(".", maxsplit=1)[0]
            if values(all_points.get(key, {}), column):
                continue
            failure = _failure(all_points.get(key, {}), kind)
            why.append(f"{key} {kind}: {failure}" if failure else f"{key} {kind}")
        failed = [w for w in why if ":" in w]
        return "not measured (" + "; ".join(failed or [f"run left out {', '.join(why)}"]) + ")"

    def add(name: str, backend: str, value: float | None, goal: float, text: str, le: bool,
            needs: list[tuple[str, str]]) -> None:  # fmt: skip
        if value is None:
            out.append(f"| {name} | {backend} | {missing(needs)} | ? |")
            return
        ok = value <= goal if le else value >= goal
        out.append(f"| {name} | {backend} | {text} | {'met' if ok else 'missed'} |")

    def ratio(name: str, backend: str, mine: tuple[str, str], other: tuple[str, str],
              goal: float) -> None:  # fmt: skip
        a = _median(all_points.get(mine[0], {}), mine[1])
        b = _median(all_points.get(other[0], {}), other[1])
        if a is not None and b:
            add(name, backend, a / b, goal, f"{a / b:.2f}x ({a:,.0f} / {b:,.0f})", False, [])
        else:
            add(name, backend, None, goal, "", False, [mine, other])

    def durable(backend: str, key: str, postgres: dict[str, str]) -> None:
        """The power-loss-safe settings, read back in this run (the kill test is the suite's)."""
        name = "no enqueue acknowledged before its commit is durable (settings)"
        runs = [p for ps in all_points.get(key, {}).values() for p in ps if p.get("ok")]
        found: dict[str, str]
        if backend == "SQLite":
            found = next((p["settings"] for p in runs if "synchronous" in p["settings"]), {})
            safe = SAFE_SQLITE
        else:
            found = postgres if runs else {}
            safe = SAFE_PG
        if not found:
            out.append(f"| {name} | {backend} | not measured (run left out {key}) | ? |")
            return
        shown = ", ".join(f"{k}={found.get(k, '?')}" for k in safe)
        ok = all(str(found.get(k, "?")).lower() in [v.lower() for v in safe[k]] for k in safe)
        text = f"{shown}; SIGKILL test: {KILL_TEST}"
        out.append(f"| {name} | {backend} | {text} | {'met' if ok else 'missed'} |")

    for backend, key, raw, batch_goal, producers_goal, floor_key in (
        ("SQLite", "offload-sqlite", "raw-sqlite", 4.0, 5.0, "floor-sqlite"),
        ("PostgreSQL", "offload-pg", "raw-pg", 2.0, 3.0, "floor-pg"),
    ):
        mine = all_points.get(key, {})
        limit = (raw, "enqueue_one")
        for column, label in (("threads32", "32 threads"), ("async500", "500 coroutines")):
            goal = producers_goal
            ratio(f"{label}, 1/call >= {goal:g}x raw 1-row commit", backend, (key, column),
                  limit, goal)  # fmt: skip
        if backend == "PostgreSQL":
            ratio("8 processes, 1/call >= 3x raw 1-row commit (1 client)", backend,
                  (key, "procs8"), limit, 3.0)  # fmt: skip
        ratio("enqueue 1/call >= 0.8x raw 1-row commit", backend, (key, "enqueue_one"), limit,
              0.8)  # fmt: skip
        ratio(f"batch of 1,000 >= {batch_goal:g}x pgqueuer", backend, (key, "batch1000"),
              ("pgqueuer", "batch1000"), batch_goal)  # fmt: skip
        ratio("drain >= 3x pgqueuer (process executor)", backend, (key, "drain"),
              ("pgqueuer", "drain"), 3.0)  # fmt: skip
        for executor in ("thread", "async"):
            ratio(f"drain >= 1.5x pgqueuer ({executor} executor)", backend,
                  (f"{key}-{executor}", "drain"), ("pgqueuer", "drain"), 1.5)  # fmt: skip
        for column in ("latency.p50", "latency.p99"):
            v = _median(mine, column)
            floor = _median(all_points.get(floor_key, {}), column)
            add(
                f"start latency {column[-3:]} <= 1.25x the no-library floor",
                backend,
                v / floor if v is not None and floor else None,
                1.25,
                f"{v / floor:.2f}x ({v:.2f} / {floor:.2f} ms)" if v is not None and floor else "",
                le=True,
                needs=[(key, column), (floor_key, column)],
            )
        scale, text = scale_ratio(mine)
        if scale is None and text == "skipped":
            name = "drain with 1M queued within 20% of 10k"
            out.append(f"| {name} | {backend} | skipped (notes: predicted too slow) | ? |")
        else:
            add("drain with 1M queued within 20% of 10k", backend, scale, 0.8, text, False,
                [(key, "scale_small"), (key, "scale_large")])  # fmt: skip
        rss = _median(mine, "latency.idle.main_rss")
        add(
            "worker idle RSS < 60 MB",
            backend,
            rss,
            60.0,
            f"{rss:.0f} MB" if rss is not None else "",
            le=True,
            needs=[(key, "latency")],
        )
        durable(backend, key, postgres or {})
    return out
