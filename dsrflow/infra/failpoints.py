"""Failpoints: named places where a process can be made to die, so that crash tests kill a real
worker at the exact line whose failure window they prove safe (after an e-mail was accepted, after a
system's erasure committed), instead of hoping a timed `kill -9` lands there.

Off unless `DSRFLOW_FAILPOINTS` names them (comma-separated); a named failpoint kills its process
with SIGKILL the first time it is reached. Nothing else reads the variable: production never sets it.
"""

from __future__ import annotations

import os
import signal


def failpoint(name: str) -> None:
    if name in os.environ.get("DSRFLOW_FAILPOINTS", "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)
