"""Failpoints: named places where a process can be made to die, so that crash tests kill a real
worker at the exact line whose failure window they prove safe (after an e-mail was accepted, after a
system's erasure committed), instead of hoping a timed `kill -9` lands there.

Off unless `DSRFLOW_FAILPOINTS` names them (comma-separated); a named failpoint kills its process
with SIGKILL the first time it is reached. `name~part` names it only where its `detail` contains
`part` (e.g. `mail-accepted~:denial:`: a denial letter's, not the acknowledgement's before it).
Nothing else reads the variable: production never sets it.
"""

from __future__ import annotations

import os
import signal


def failpoint(name: str, detail: str = "") -> None:
    for named in os.environ.get("DSRFLOW_FAILPOINTS", "").split(","):
        point, _, part = named.partition("~")
        if point == name and part in detail:
            os.kill(os.getpid(), signal.SIGKILL)
