"""Helpers for the SaaS connector tests: a stand-in served over loopback, a policy with http
systems using the shipped configurations (policy/http/*.yaml), and a connector for one of them."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from activities.connectors import build_connector
from activities.connectors.base import ConnectorEnv, Subject
from devstack.policy_copies import only_systems
from dsrflow.settings import Settings
from policy.model import DEFAULT_POLICY, LoadedPolicy, load_policy
from tests.support import english_only

SECRET = b"s" * 32


def http_policy(tmp: Path, systems: dict[str, dict[str, Any]], keep: tuple[str, ...] = ()) -> LoadedPolicy:
    """The default policy with only `keep` of its systems, plus the given http systems."""
    content = only_systems(yaml.safe_load(DEFAULT_POLICY.read_text()), keep)
    content["systems"].update(systems)
    english_only(content)
    path = tmp / f"policy-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return load_policy(path)


def http_system(file: str, label: str, vars: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"file": file}
    if vars:
        config["vars"] = vars
    return {"label": label, "connector": "http", "config": config, **extra}


def connector(loaded: LoadedPolicy, name: str, pool: asyncpg.Pool, settings: Settings | None = None):
    policy = loaded.policy
    return build_connector(ConnectorEnv(
        system_name=name, system=policy.systems[name], policy=policy,
        settings=settings or Settings(), secret=SECRET, callback_url="", pool=pool))


def subject(email: str, request_id: str | None = None) -> Subject:
    return Subject(request_id=request_id or str(uuid.uuid4()), email=email, name="Test Subject")


async def collect(connector_, who: Subject) -> list:
    return [record async for record in connector_.access(who)]
