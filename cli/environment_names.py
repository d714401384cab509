"""`DSRFLOW_` variables in the environment that no part of dsrflow reads.

A settings loader passes over a name it does not know, so a misspelt one changes nothing and
says nothing: `DSRFLOW_ENVIRONMENT=production` leaves the process in development, where keys are
generated, the embedded database has no password and none of production's refusals
(dsrflow/infra/production.py) runs; a log level set without its underscore keeps every info
line. So the api
and the worker look at each `DSRFLOW_` variable before they start. One that no setting, no part of
the policy in force (a `${NAME}` in a system's configuration, an http system's `*_env`) and nothing
else in dsrflow reads is named, with the name it most resembles. Production refuses to start on
it; development says so on standard error and goes on.

Only the `DSRFLOW_` prefix is dsrflow's own: `SMTP_*`, `IMAP_*` and `TEMPORAL_*` are shared with
other software in the same environment, and the policy's secrets may have any name.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import AliasChoices

from activities.connectors import placeholder_names
from devstack.demo_names import DEMO_OPENDSR_URL, DEMO_PROCESSOR_ADDRESSES
from dsrflow.infra.ports import HANDED_OUT_VARIABLE, SHARE_VARIABLE
from dsrflow.settings import Settings, SettingsError
from policy.model import LoadedPolicy, PolicyError, load_policy

PREFIX = "DSRFLOW_"
# Read by something other than the settings: a process that kills itself at a named point for the
# crash tests (dsrflow/infra/failpoints.py), the test suite's PostgreSQL servers that skip flushing
# to the disk (devstack/postgres.py) and its workers' shares of the server ports
# (dsrflow/infra/ports.py) and the ports a parent handed out lately, which its children inherit
# (the same module; set by dsrflow itself, `dsrflow up` too), docker-compose.yml's database password (the compose
# file builds DSRFLOW_DATABASE_URL from it), and what `dsrflow up` gives its children for the
# shipped policy's demo processors.
OTHER_NAMES = frozenset({"DSRFLOW_FAILPOINTS", "DSRFLOW_TESTS_NO_FSYNC", SHARE_VARIABLE, HANDED_OUT_VARIABLE,
                         "DSRFLOW_DB_PASSWORD", DEMO_OPENDSR_URL,
                         *DEMO_PROCESSOR_ADDRESSES})
# Settings an earlier version read: an upgraded deployment that still sets one is told what
# took its place, rather than that it looks like a typo.
RETIRED = {
    "DSRFLOW_RATE_VERIFY_PER_EMAIL": "no longer read: DSRFLOW_RATE_GUESS_PER_EMAIL took its place, and counts "
                                     "wrong codes only (docs/rate-limits.md)",
}


def setting_names() -> set[str]:
    names: set[str] = set()
    for field in Settings.model_fields.values():
        if isinstance(field.validation_alias, AliasChoices):  # every setting names its variable
            names.update(str(choice) for choice in field.validation_alias.choices)
    return names


def policy_names(content: Any) -> set[str]:
    """The variables a policy's content reads: `${NAME}` placeholders anywhere, and the names an
    http system's `auth` gives in its `*_env` fields."""
    found: set[str] = set()
    if isinstance(content, Mapping):
        for key, value in content.items():
            if isinstance(key, str) and key.endswith("_env") and isinstance(value, str):
                found.add(value)
            found |= policy_names(value)
    elif isinstance(content, list):
        for item in content:
            found |= policy_names(item)
    elif isinstance(content, str):
        found |= placeholder_names(content)
    return found


def unread_variables(environ: Mapping[str, str], read: Iterable[str]) -> list[str]:
    """One line per `DSRFLOW_` variable set in `environ` that is not in `read`, naming the one it
    most resembles when there is one."""
    known = set(read)
    lines = []
    for name in sorted(n for n in environ if n.startswith(PREFIX) and n not in known):
        if name in RETIRED:
            lines.append(f"{name}: {RETIRED[name]}")
            continue
        close = resembling(name, known)
        hint = f" (did you mean {close}?)" if close else ""
        lines.append(f"{name}: dsrflow reads no variable of this name, so it has no effect{hint}")
    return lines


def resembling(name: str, known: Iterable[str]) -> str | None:
    """The known name `name` is most likely a slip for: one that begins the other (ENVIRONMENT
    for ENV), else the closest spelling. Compared without the prefix every name shares."""
    stem = name.removeprefix(PREFIX)
    stems = {other.removeprefix(PREFIX): other for other in known if other.startswith(PREFIX)}
    extended = [other for other in stems if min(len(other), len(stem)) >= 3
                and (stem.startswith(other) or other.startswith(stem))]
    if extended:
        return stems[max(extended, key=len)]
    close = difflib.get_close_matches(stem, list(stems), n=1, cutoff=0.75)
    return stems[close[0]] if close else None


def refuse_unread_variables(settings: Settings, environ: Mapping[str, str] = os.environ) -> LoadedPolicy | None:
    """Raise SettingsError in production naming each unread variable; in development, warn of
    each on standard error. A policy that does not load is left to the start that follows, which
    names its fault. Returns the policy as read (None when it does not load): the worker and the
    API start on it rather than reading the file again (26 ms of CPU a read)."""
    try:
        loaded: LoadedPolicy | None = load_policy(settings.policy_path)
    except PolicyError:
        loaded = None
    in_policy = policy_names(loaded.content) if loaded is not None else set()
    lines = unread_variables(environ, setting_names() | OTHER_NAMES | in_policy)
    if lines and settings.environment == "production":
        raise SettingsError("refusing to start in production: " + "; ".join(lines))
    for line in lines:
        print(f"warning: {line}", file=sys.stderr, flush=True)
    return loaded
