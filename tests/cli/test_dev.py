"""`offload dev` for real: one process with a worker, the scheduler, the API and the
dashboard, stopped by SIGTERM with exit code 0 and nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.server.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_dev_serves_the_demo_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(tmp_path)}
    env.pop("OFFLOAD_APP", None)
    env.pop("OFFLOAD_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "offload", "dev", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().decode()
        assert first.strip() == f"offload dev: dashboard at http://127.0.0.1:{port}/", first
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0].decode()
            try:
                page = httpx.get(base + "/", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "offload dev did not answer"
                time.sleep(0.1)
        assert page.status_code == 200 and "Overview" in page.text
        assert "media" in page.text and "mail" in page.text  # the demo's queues
        deadline = time.monotonic() + 60
        while 'data-state="succeeded"' not in httpx.get(base + "/workflows/1").text:
            assert time.monotonic() < deadline, "the sample workflow did not finish"
            time.sleep(0.3)
        assert "demo.digest" in httpx.get(base + "/cron").text
        assert "FeedUnreachable" in httpx.get(base + "/dead").text
        below = _descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        output = first + process.stdout.read().decode()  # until it closes its end
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 0, output
    assert "Ctrl-C or SIGTERM stops everything" in output
    assert output.rstrip().endswith("offload dev: stopped"), output
    assert not any(Path(f"/proc/{pid}").exists() for pid in below), "processes left behind"
    assert not any(tmp_path.glob("offload-dev-*")), "its SQLite file was left behind"
