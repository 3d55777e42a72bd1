"""The `offload` command line: run workers and inspect or steer jobs of an App.

Every command but `demo` works on the App named by `--app MODULE:ATTR` (or $OFFLOAD_APP);
click's `auto_envvar_prefix` makes every flag an `OFFLOAD_*` variable as well.
"""

from offload.cli.entry import main

__all__ = ["main"]
