"""Preloaded by the fork server alone: importing it makes that process ignore SIGTERM.

The worker decides when its job processes stop (it kills them with SIGKILL), so a SIGTERM
sent to its whole process group (systemd's default KillMode=control-group) must reach none
of them: not the fork server, whose death would SIGKILL every child (`child.end_with_worker`),
nor the children it forks, which inherit the disposition. The fork server still exits with
the worker, when its lifeline pipe ends. Nothing else imports this module.
"""

from __future__ import annotations

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
