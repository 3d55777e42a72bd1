"""Test helpers for applications built on offload (public, as `offload` itself is).

    from offload.testing import harness

    with harness(app) as jobs:               # mode="manual": jobs wait to be run
        send_welcome.enqueue(42)
        jobs.assert_enqueued(send_welcome, args=[42])
        jobs.drain()                         # runs them, and the jobs they enqueue

    with harness(app, mode="inline"):        # each enqueue runs its job before returning
        assert send_welcome.enqueue(42).result() is None

The App is pointed at a fresh database for the block (a temporary SQLite file unless `url=`
is given) and jobs run on a real worker in the test's process, so arguments go through the
same JSON round trip as in production: a test catches an argument that is not JSON. The
pytest plugin (`offload.testing.plugin`, registered by the package) gives the fixtures
`offload_app` and `offload_testing`.
"""

from offload.testing._harness import Drained, Harness, InlineTransaction, harness

__all__ = ["Drained", "Harness", "InlineTransaction", "harness"]
