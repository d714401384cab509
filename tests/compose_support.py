"""Reading docker-compose.yml and docker-compose.dev.yml as Compose would, for the compose tests."""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path

from dsrflow.settings import Settings
from tests.yaml_files import read_yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("api", "worker")
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _random_b64() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


# What an operator exports before `docker compose up`, as the file's header says.
OPERATOR_ENV = {
    "DSRFLOW_ENCRYPTION_KEYS": f"k1:{_random_b64()}", "DSRFLOW_SECRET_KEY": _random_b64(),
    "DSRFLOW_DB_PASSWORD": secrets.token_urlsafe(16), "TEMPORAL_DB_PASSWORD": secrets.token_urlsafe(16),
    "POSTGRES_PASSWORD": secrets.token_urlsafe(16), "SMTP_HOST": "relay.example.com",
    "DSRFLOW_METRICS_TOKEN": secrets.token_hex(32), "GRAFANA_ADMIN_PASSWORD": secrets.token_urlsafe(16),
    "MINIO_ROOT_PASSWORD": secrets.token_urlsafe(16), "DSRFLOW_S3_SECRET_ACCESS_KEY": secrets.token_urlsafe(16),
}


def load_compose(name: str = "docker-compose.yml") -> dict:
    return read_yaml(ROOT / name)


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?message}` and `$$`, against `env` only."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        value = env.get(name)
        # The colon forms treat an empty value as unset.
        if value is not None and (value or not (op or "").startswith(":")):
            return value
        if op is None:
            return ""
        if op.endswith("-"):
            return arg
        raise AssertionError(f"{name} is required: {arg}")

    return _VARIABLE.sub(replace, value)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def app_environment(compose: dict, name: str) -> dict[str, str]:
    """The api's or worker's variables as Compose would pass them, the operator's secrets supplied."""
    raw = environment(compose["services"][name])
    return {key: interpolate(value, OPERATOR_ENV) for key, value in raw.items()}


def container_ports(service: dict) -> set[int]:
    """Ports the service listens on inside the compose network (`ports` targets and `expose`)."""
    found = {int(str(port).split("/")[0]) for port in service.get("expose", [])}
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.add(int(port["target"]))
        else:
            found.add(int(str(port).split("/")[0].rsplit(":", 1)[-1]))
    return found


def published_ports(service: dict) -> dict[int, int]:
    """Container port -> port published on the host."""
    published: dict[int, int] = {}
    for port in service.get("ports", []):
        if isinstance(port, dict):
            published[int(port["target"])] = int(port["published"])
        else:
            parts = str(port).split("/")[0].split(":")
            if len(parts) >= 2:
                published[int(parts[-1])] = int(parts[-2])
    return published


def settings_aliases() -> set[str]:
    aliases: set[str] = set()
    for field in Settings.model_fields.values():
        aliases.update(str(choice) for choice in field.validation_alias.choices)
    return aliases


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def command_lines(service: dict) -> list[str]:
    command = service.get("command") or []
    text = command if isinstance(command, str) else "\n".join(command)
    return [line.strip() for line in text.replace("$$", "$").splitlines() if line.strip()]


def bind_mounts(service: dict) -> dict[str, Path]:
    """Container path -> the file or folder of this checkout mounted there (`./...` sources)."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if source.startswith("./"):
            mounts[rest.split(":")[0]] = ROOT / source
    return mounts


def mounted(service: dict, container_path: str) -> Path:
    """The checkout's file at `container_path` inside the service, through its bind mounts."""
    for target, source in bind_mounts(service).items():
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target):].lstrip("/") if source.is_dir() else source
    raise AssertionError(f"{container_path} is not mounted from this checkout")
