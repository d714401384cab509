"""The policy files the tests' in-process apps start on, each read once per test process as it is
on disk: each app read its file anew, 20-26 ms of CPU, and the suite starts hundreds (the `http` and
`app_http` fixtures, `api_client`). The apps only read it (api/state.py)."""

from __future__ import annotations

import functools
from pathlib import Path

from dsrflow.settings import Settings
from policy.model import DEFAULT_POLICY, LoadedPolicy, load_policy


def policy_at(path: Path) -> LoadedPolicy:
    """The policy file at `path`, read again only once it changed (path, size, modification time)."""
    stat = path.stat()
    return _read_policy(path, stat.st_size, stat.st_mtime_ns)


def policy_of(settings: Settings) -> LoadedPolicy:
    """The policy file an in-process app on `settings` starts on."""
    return policy_at(settings.policy_path or DEFAULT_POLICY)


@functools.lru_cache(maxsize=8)
def _read_policy(path: Path, size: int, mtime_ns: int) -> LoadedPolicy:
    return load_policy(path)
