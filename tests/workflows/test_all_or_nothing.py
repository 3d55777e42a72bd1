"""Enqueue of a 10,000-node workflow is one transaction: a producer killed with SIGKILL
after its nodes were written, before the commit, leaves nothing of it stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import offload
from tests.runtime.conftest import PYTHONPATH, ROOT

PRODUCER = textwrap.dedent(
    """
    import os, signal
    import offload
    from offload.backends.sql.workflows import SqlWorkflows
    from tests.apps.basic import app, noop

    def die(*_args, **_kwargs):
        print("nodes written", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    SqlWorkflows._lock_parents = die  # the step after the nodes' insert, before the edges
    group = offload.group(*[noop.si() for _ in range(9_999)])
    offload.chord(group, noop.si()).enqueue()
    print("committed", flush=True)
    """
)


def test_a_producer_killed_mid_enqueue_stores_nothing(basic_app: offload.App) -> None:
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    done = subprocess.run(
        [sys.executable, "-c", PRODUCER],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert done.stdout.decode().split() == ["nodes", "written"]
    assert basic_app.queue_counts() == {}
    assert basic_app.workflows() == []
    # The same workflow, not killed, is stored whole.
    noop = offload.Task[..., None](
        basic_app, basic_app.registry.get("noop"), offload.core.options.EnqueueOptions()
    )
    handle = offload.chord(offload.group(*[noop.si() for _ in range(9_999)]), noop.si()).enqueue()
    assert len(handle.nodes) == 10_000
    assert basic_app.queue_counts() == {"default": {"available": 9_999, "waiting": 1}}
