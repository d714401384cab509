"""Connector kinds, one module each; `build_connector` picks the one a system's policy names."""

from __future__ import annotations

import os
import re
from importlib import import_module
from typing import Any

from activities.connectors.base import Connector, ConnectorEnv
from schemas.vocabulary import ConnectorKind

_KINDS: dict[str, tuple[str, str]] = {
    ConnectorKind.sql: ("activities.connectors.sql", "SqlConnector"),
    ConnectorKind.opendsr: ("activities.connectors.opendsr", "OpenDsrConnector"),
    ConnectorKind.manual_email: ("activities.connectors.manual_email", "ManualEmailConnector"),
    ConnectorKind.http: ("activities.connectors.http", "HttpConnector"),
}
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def expand_env(value: Any) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in connector config strings, recursively. The
    policy file (and so its version hash) keeps the placeholders, never the values."""
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            found = os.environ.get(match.group(1))
            if found is None and match.group(2) is None:
                raise KeyError(f"environment variable {match.group(1)} is not set")
            return found if found is not None else match.group(2)

        return _VAR.sub(replace, value)
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    return value


def placeholder_names(value: str) -> set[str]:
    """The variables `expand_env` reads for `value`."""
    return {match.group(1) for match in _VAR.finditer(value)}


def connector_class(kind: str, system_name: str = "?") -> type[Connector]:
    if kind not in _KINDS:
        raise NotImplementedError(f"system {system_name}: connector kind {kind!r} is not available")
    module, name = _KINDS[kind]
    kind_class: type[Connector] = getattr(import_module(module), name)
    return kind_class


def build_connector(env: ConnectorEnv) -> Connector:
    return connector_class(env.system.connector, env.system_name)(env)
