"""The environment variables the manual names are the ones dsrflow reads, with the defaults it
gives them, both ways:

- every `DSRFLOW_*`, `SMTP_*`, `IMAP_*`, `TEMPORAL_*` or `OTEL_*` variable named in README.md or
  docs/ is a setting (`dsrflow/settings.py`, `dsrflow/rate_settings.py`) or one of `ELSEWHERE`,
  each of which says who reads it (and is checked to be there);
- every setting is in docs/configuration.md's table, or in docs/rate-limits.md's for the limits
  configuration.md sends the reader to;
- every `DSRFLOW_*` name the code spells out (`os.environ`, the policy's `${VAR}`, compose) is a
  setting or documented in configuration.md;
- where a table gives one variable a plain default (`20/hour`, `8000`, `false`), it is the
  setting's default (a setting whose default is None is worked out elsewhere: `DSRFLOW_POLICY`'s
  shipped policy, `DSRFLOW_PUBLIC_URL`'s `http://HOST:PORT`; not compared).

No stack: the settings object and the files only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dsrflow.rate_settings import RateLimitSettings
from dsrflow.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
CONFIGURATION = ROOT / "docs" / "configuration.md"
RATE_LIMITS = ROOT / "docs" / "rate-limits.md"
NAMED = re.compile(r"\b((?:DSRFLOW|SMTP|IMAP|TEMPORAL|OTEL)_[A-Z0-9_]*)(\*?)")

# Variables the manual names that are not settings: who reads them, as (file that names it, or
# None where no file of ours does).
ELSEWHERE: dict[str, str | None] = {
    # Test-only: kills a process at a named point (dsrflow/infra/failpoints.py reads os.environ).
    "DSRFLOW_FAILPOINTS": "dsrflow/infra/failpoints.py",
    # Test-only: the embedded PostgreSQL servers skip flushing commits to the disk (tests/conftest.py sets it).
    "DSRFLOW_TESTS_NO_FSYNC": "devstack/postgres.py",
    # Test-only: each pytest-xdist worker's share of the server ports (tests/conftest.py sets it).
    "DSRFLOW_TESTS_PORT_SHARE": "dsrflow/infra/ports.py",
    # Set by dsrflow itself: the ports a process handed out lately, which its children inherit.
    "DSRFLOW_PORTS_HANDED_OUT": "dsrflow/infra/ports.py",
    # The shipped policy's `${VAR}` substitutions; `dsrflow up` sets them (devstack/stack.py).
    "DSRFLOW_DEMO_OPENDSR_URL": "policy/connexeon.yaml",
    "DSRFLOW_SURVEYS_PRIVACY_EMAIL": "policy/connexeon.yaml",
    "DSRFLOW_WORK_MANAGEMENT_PRIVACY_EMAIL": "policy/connexeon.yaml",
    "DSRFLOW_REGISTRATION_PRIVACY_EMAIL": "policy/connexeon.yaml",
    "DSRFLOW_MONITORING_PRIVACY_EMAIL": "policy/connexeon.yaml",
    # docker-compose.yml's own: the database users' passwords it builds the URLs from.
    "DSRFLOW_DB_PASSWORD": "docker-compose.yml",
    "TEMPORAL_DB_PASSWORD": "docker-compose.yml",
    # The Temporal Web UI's own, set on compose's temporal-ui service.
    "TEMPORAL_CODEC_ENDPOINT": "docker-compose.yml",
    "TEMPORAL_CODEC_INCLUDE_CREDENTIALS": "docker-compose.yml",
    "TEMPORAL_CORS_ORIGINS": "docker-compose.yml",
    "TEMPORAL_DISABLE_WRITE_ACTIONS": "docker-compose.yml",
    # The Temporal Web UI's OIDC sign-in (docs/security.md): the operator adds them to temporal-ui.
    "TEMPORAL_AUTH_ENABLED": None,
    "TEMPORAL_AUTH_PROVIDER_URL": None,
    "TEMPORAL_AUTH_ISSUER_URL": None,
    "TEMPORAL_AUTH_CLIENT_ID": None,
    "TEMPORAL_AUTH_CLIENT_SECRET": None,
    "TEMPORAL_AUTH_CALLBACK_URL": None,
    "TEMPORAL_AUTH_SCOPES": None,
    # The OpenTelemetry SDK's standard variables; dsrflow/infra/tracing.py defers to them.
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "dsrflow/infra/tracing.py",
    "OTEL_SERVICE_NAME": "dsrflow/infra/tracing.py",
    "OTEL_RESOURCE_ATTRIBUTES": "dsrflow/infra/tracing.py",
    "OTEL_TRACES_SAMPLER": "dsrflow/infra/tracing.py",
    "OTEL_EXPORTER_OTLP_HEADERS": None,
    "OTEL_TRACES_SAMPLER_ARG": None,
}
# Named by the manual only to say that it no longer exists: it must stay gone.
REMOVED = {"DSRFLOW_RATE_VERIFY_PER_EMAIL"}
# Named by the manual as the slip `dsrflow api` and `dsrflow worker` warn of (cli/environment_names.py).
MISSPELT = {"DSRFLOW_ENVIRONMENT"}
# Where the code spells out `DSRFLOW_*` names (besides the settings): its own packages, the policy,
# compose and the Dockerfile.
CODE = ["schemas", "dsrflow", "policy", "activities", "workflows", "workers", "api", "devstack", "cli"]


def _aliases(fields: dict) -> dict[str, object]:
    return {field.validation_alias.choices[0]: field.get_default(call_default_factory=True)
            for field in fields.values()}


SETTINGS = _aliases(Settings.model_fields)
RATE_SETTINGS = _aliases(RateLimitSettings.model_fields)


def _named(document: Path) -> list[tuple[int, str, bool]]:
    """(line, name, is a `NAME_*` wildcard) for every variable the document names."""
    return [(number, found.group(1), bool(found.group(2)))
            for number, line in enumerate(document.read_text().splitlines(), 1)
            for found in NAMED.finditer(line)]


def test_every_variable_the_manual_names_is_read():
    known = SETTINGS.keys() | ELSEWHERE.keys()
    unknown = []
    for document in DOCUMENTS:
        for number, name, wildcard in _named(document):
            if wildcard or name.endswith("_"):
                ok = any(k.startswith(name) for k in known)
            else:
                ok = name in known or name in REMOVED | MISSPELT
            if not ok:
                unknown.append(f"{document.relative_to(ROOT)}:{number}: {name}{'*' if wildcard else ''}")
    assert not unknown, "variables no setting or ELSEWHERE entry reads:\n" + "\n".join(unknown)


def test_the_variables_read_elsewhere_are_where_the_list_says():
    missing = [f"{name}: not in {path}" for name, path in ELSEWHERE.items()
               if path is not None and name not in (ROOT / path).read_text()]
    assert not missing, "\n".join(missing)
    assert not (ELSEWHERE.keys() | REMOVED) & SETTINGS.keys(), "a setting now: take it off the lists"


def test_every_setting_is_documented():
    configuration = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", CONFIGURATION.read_text()))
    rate_limits = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", RATE_LIMITS.read_text()))
    undocumented = [name for name in SETTINGS
                    if name not in configuration and not (name in RATE_SETTINGS and name in rate_limits)]
    assert not undocumented, f"settings docs/configuration.md (or rate-limits.md) does not name: {undocumented}"
    assert "`DSRFLOW_RATE_*`" in CONFIGURATION.read_text(), "configuration.md must send the reader to the limits"


def test_every_variable_the_code_reads_is_documented():
    configuration = CONFIGURATION.read_text()
    files = [p for package in CODE for p in (ROOT / package).rglob("*") if p.suffix in (".py", ".yaml", ".yml")]
    files += [ROOT / "docker-compose.yml", ROOT / "Dockerfile"]
    undocumented = sorted({f"{name} ({path.relative_to(ROOT)})" for path in files
                           for name in re.findall(r"\b(DSRFLOW_[A-Z0-9_]*[A-Z0-9])\b", path.read_text())
                           if name not in SETTINGS and name not in configuration})
    assert not undocumented, f"read by the code, not in docs/configuration.md: {undocumented}"


def _table_defaults(document: Path) -> list[tuple[int, str, str]]:
    """(line, variable, default) for each table row naming one variable and a plain default."""
    rows = []
    for number, line in enumerate(document.read_text().splitlines(), 1):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("| `") else []
        if len(cells) < 3:
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        default = re.fullmatch(r"`([^`]*)`|(\d[\d.]*)", cells[1])
        if len(names) == 1 and default:
            rows.append((number, names[0], default.group(1) if default.group(1) is not None else default.group(2)))
    return rows


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path):
        return f"./{value}"
    return "[]" if value == [] else str(value)


@pytest.mark.parametrize("document", ["configuration.md", "rate-limits.md", "observability.md"])
def test_the_tables_give_the_settings_defaults(document):
    rows = _table_defaults(ROOT / "docs" / document)
    assert rows, f"no variable with a default found in {document}: has its table changed shape?"
    wrong = [f"{document}:{number}: {name} documented `{default}`, the setting's default is `{_shown(SETTINGS[name])}`"
             for number, name, default in rows
             if SETTINGS.get(name) is not None and default != _shown(SETTINGS[name])]
    assert not wrong, "\n".join(wrong)
