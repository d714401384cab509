"""The one settings object, read from the environment.

Every process (api, workers, CLI, `dsrflow up`, tests) builds its configuration here so that a
variable means the same thing everywhere. A bad value is reported as one line naming the variable
and what it expects; `cli.main` turns that into a non-zero exit.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlparse

import pydantic_settings
from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsConfigDict

from dsrflow.rate_settings import RateLimitSettings
from dsrflow.setting_values import decode_secret, parse_key_list


class SettingsError(Exception):
    """A configuration value is malformed; the message is one line naming the variable."""


_PORT_HELP = "a TCP port number between 1 and 65535"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _port_field(default: int, env: str) -> int:
    return Field(default, ge=1, le=65535, validation_alias=AliasChoices(env))


class Settings(RateLimitSettings):
    """Configuration of one dsrflow process.

    Address variables (`DSRFLOW_DATABASE_URL`, `TEMPORAL_ADDRESS`, `SMTP_HOST`) select an external
    component; when unset, `dsrflow up` starts the embedded one on the `DSRFLOW_*_PORT` ports.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=False, frozen=True)

    home: Path = Field(Path("./.dsrflow"), validation_alias=AliasChoices("DSRFLOW_HOME"))
    environment: Literal["development", "production"] = Field(
        "development", validation_alias=AliasChoices("DSRFLOW_ENV")
    )
    database_url: str | None = Field(None, validation_alias=AliasChoices("DSRFLOW_DATABASE_URL"))
    temporal_address: str | None = Field(None, validation_alias=AliasChoices("TEMPORAL_ADDRESS"))
    temporal_namespace: str = Field("default", validation_alias=AliasChoices("TEMPORAL_NAMESPACE"))
    smtp_host: str | None = Field(None, validation_alias=AliasChoices("SMTP_HOST"))
    smtp_port: int = _port_field(1025, "SMTP_PORT")
    smtp_username: str | None = Field(None, validation_alias=AliasChoices("SMTP_USERNAME"))
    smtp_password: str | None = Field(None, validation_alias=AliasChoices("SMTP_PASSWORD"))
    smtp_starttls: bool = Field(False, validation_alias=AliasChoices("SMTP_STARTTLS"))
    # Plain SMTP to a relay that is not on this host, in production: only on a network of your own.
    smtp_allow_plain: bool = Field(False, validation_alias=AliasChoices("SMTP_ALLOW_PLAIN"))
    # The controller's privacy mailbox (docs/mailbox.md): read over IMAP when IMAP_HOST is set.
    imap_host: str | None = Field(None, validation_alias=AliasChoices("IMAP_HOST"))
    imap_port: int = _port_field(993, "IMAP_PORT")
    imap_username: str | None = Field(None, validate_default=True, validation_alias=AliasChoices("IMAP_USERNAME"))
    imap_password: SecretStr | None = Field(None, validation_alias=AliasChoices("IMAP_PASSWORD"))
    imap_folder: str = Field("INBOX", min_length=1, validation_alias=AliasChoices("IMAP_FOLDER"))
    # Implicit TLS (port 993); plain IMAP only for a server on this host.
    imap_tls: bool = Field(True, validation_alias=AliasChoices("IMAP_TLS"))
    # A CA bundle to trust instead of the system's (a private CA, or a test's own certificate).
    imap_ca_file: Path | None = Field(None, validation_alias=AliasChoices("IMAP_CA_FILE"))
    # Seconds between checks when the server does not offer IDLE (and the longest IDLE lasts).
    imap_poll_seconds: float = Field(60.0, gt=0, le=1740, validation_alias=AliasChoices("IMAP_POLL_SECONDS"))
    api_host: str = Field("127.0.0.1", validation_alias=AliasChoices("DSRFLOW_API_HOST"))
    api_port: int = _port_field(8000, "DSRFLOW_API_PORT")
    public_url: str | None = Field(None, validation_alias=AliasChoices("DSRFLOW_PUBLIC_URL"))
    encryption_keys: str | None = Field(
        None, validation_alias=AliasChoices("DSRFLOW_ENCRYPTION_KEYS")
    )
    # HMAC secret (base64, 32 bytes) for verification codes, link tokens and identifier hashes.
    secret_key_b64: str | None = Field(None, validation_alias=AliasChoices("DSRFLOW_SECRET_KEY"))
    policy_path: Path | None = Field(None, validation_alias=AliasChoices("DSRFLOW_POLICY"))
    # Ports of the embedded components, used only when the matching address variable is unset.
    postgres_port: int = _port_field(5433, "DSRFLOW_POSTGRES_PORT")
    temporal_port: int = _port_field(7233, "DSRFLOW_TEMPORAL_PORT")
    temporal_ui_port: int = _port_field(8233, "DSRFLOW_TEMPORAL_UI_PORT")
    # Where staff reach the Temporal Web UI when it is not the embedded one on this machine.
    temporal_ui_public_url: str | None = Field(
        None, validation_alias=AliasChoices("DSRFLOW_TEMPORAL_UI_URL")
    )
    task_queue: str = Field("dsr", validation_alias=AliasChoices("DSRFLOW_TASK_QUEUE"))
    # Days a new staff token works when its creator names no other lifetime (`dsrflow token create
    # --expires-in`, the console's Tokens page, `POST /v1/tokens`): a departed colleague's token,
    # or one left in a script, stops working on its own rather than when someone remembers it.
    token_days: int = Field(90, ge=1, le=3650, validation_alias=AliasChoices("DSRFLOW_TOKEN_DAYS"))
    # Seconds a worker may hold a request's next workflow step before the engine hands it to another
    # (Temporal's workflow task timeout, set on each request's workflow when it starts and taken by
    # its children): a worker killed in the middle of a step holds its requests this long. Temporal's
    # default; lower only where no worker's event loop is ever blocked that long.
    workflow_task_timeout: float = Field(10.0, ge=1, le=60,
                                         validation_alias=AliasChoices("DSRFLOW_WORKFLOW_TASK_TIMEOUT"))
    # Workflow code in Temporal's sandbox: the tests run it there; see workers/dsr_worker.py.
    workflow_sandbox: bool = Field(False, validation_alias=AliasChoices("DSRFLOW_WORKFLOW_SANDBOX"))
    # The worker's and the API's event loop (dsrflow/infra/event_loop.py).
    event_loop: Literal["uvloop", "asyncio"] = Field("uvloop", validation_alias=AliasChoices("DSRFLOW_EVENT_LOOP"))
    # `dsrflow up` seeds and starts the demo processor systems (crm, analytics, billing, email).
    demo: bool = Field(True, validation_alias=AliasChoices("DSRFLOW_DEMO"))
    demo_opendsr_port: int = _port_field(8100, "DSRFLOW_DEMO_OPENDSR_PORT")
    # `dsrflow up`'s first pause before restarting a worker or API that exited; each restart
    # within a minute doubles it (devstack/supervisor.py).
    restart_pause: float = Field(1.0, gt=0, le=60, validation_alias=AliasChoices("DSRFLOW_RESTART_PAUSE"))
    # A stored request whose workflow has not started after this many minutes (the API died, or
    # Temporal was away, between storing it and starting it) is started by the worker's sweep
    # (activities/request_start_sweep.py).
    start_sweep_after_minutes: int = Field(
        10, ge=1, le=10080, validation_alias=AliasChoices("DSRFLOW_START_SWEEP_AFTER_MINUTES"))
    # An http system's action stops starting requests after this many seconds of one attempt (at
    # most 80% of the attempt's 10 minutes), and the next attempt carries on from its journal
    # (activities/connectors/http_journal.py): a run of any length finishes, slice by slice.
    http_run_slice_seconds: float = Field(
        480.0, gt=0, le=3600, validation_alias=AliasChoices("DSRFLOW_HTTP_RUN_SLICE_SECONDS"))
    # Seconds the demo e-mail processor takes to carry out a request (benchmarks set 0).
    demo_opendsr_delay: float = Field(2.0, ge=0, validation_alias=AliasChoices("DSRFLOW_DEMO_OPENDSR_DELAY"))
    # Unverified requests open at once, over every address: each one lives for the verification
    # window and sends mail from the controller's domain. Beyond it public intake answers 503.
    max_unverified_open: int = Field(
        10000, ge=1, validation_alias=AliasChoices("DSRFLOW_MAX_UNVERIFIED_OPEN")
    )
    # `dsrflow up --demo-saas`: also the Stripe, HubSpot, Mailchimp and GA4 stand-ins, as http systems.
    demo_saas: bool = Field(False, validation_alias=AliasChoices("DSRFLOW_DEMO_SAAS"))
    demo_saas_port: int = _port_field(8110, "DSRFLOW_DEMO_SAAS_PORT")
    # Where access packages and processors' uploads are kept (dsrflow/infra/storage.py): `local`
    # under DSRFLOW_HOME, for one host; `s3`, a bucket that every api and worker reaches.
    storage: Literal["local", "s3"] = Field("local", validation_alias=AliasChoices("DSRFLOW_STORAGE"))
    s3_endpoint: str | None = Field(None, validation_alias=AliasChoices("DSRFLOW_S3_ENDPOINT"))
    s3_bucket: str | None = Field(None, validate_default=True, validation_alias=AliasChoices("DSRFLOW_S3_BUCKET"))
    s3_prefix: str = Field("", validation_alias=AliasChoices("DSRFLOW_S3_PREFIX"))
    s3_region: str | None = Field(None, validation_alias=AliasChoices("DSRFLOW_S3_REGION"))
    # Both unset: the standard AWS ones apply (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a web
    # identity token, an instance role).
    s3_access_key_id: str | None = Field(None, validation_alias=AliasChoices("DSRFLOW_S3_ACCESS_KEY_ID"))
    s3_secret_access_key: str | None = Field(
        None, validate_default=True, validation_alias=AliasChoices("DSRFLOW_S3_SECRET_ACCESS_KEY")
    )
    # Plain http to a store that is not on this host, in production: only on a network of your own.
    s3_allow_http: bool = Field(False, validation_alias=AliasChoices("DSRFLOW_S3_ALLOW_HTTP"))
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", validation_alias=AliasChoices("DSRFLOW_LOG_LEVEL")
    )
    # Extra regular expressions (JSON list) for personal data the log redactor must remove.
    redact_patterns: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("DSRFLOW_REDACT_PATTERNS")
    )
    # Observability (docs/observability.md). The worker's /metrics answers without credentials,
    # so its bind address decides who may read it: loopback unless the operator says otherwise.
    worker_metrics_address: str = Field(
        "127.0.0.1:9464", validation_alias=AliasChoices("DSRFLOW_WORKER_METRICS_ADDRESS")
    )
    # A bearer secret that reads the API's /metrics and nothing else (Prometheus holds it); an
    # admin's staff token reads it too.
    metrics_token: str | None = Field(None, validation_alias=AliasChoices("DSRFLOW_METRICS_TOKEN"))
    # The standard OpenTelemetry variable: tracing is off unless it names a collector.
    otlp_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT")
    )

    @field_validator("worker_metrics_address")
    @classmethod
    def _check_metrics_address(cls, value: str) -> str:
        if value.lower() in ("", "off"):
            return "off"
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("host:port to serve the worker's /metrics on (such as 127.0.0.1:9464), or off")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: str | None) -> str | None:
        if value is not None and (len(value) < 32 or any(c.isspace() for c in value)):
            raise ValueError("a random token of at least 32 characters without spaces (openssl rand -hex 32)")
        return value

    @field_validator("otlp_endpoint")
    @classmethod
    def _check_otlp_endpoint(cls, value: str | None) -> str | None:
        if not value:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("the OTLP/HTTP collector's base URL, such as http://otel-collector:4318")
        return value.rstrip("/")

    @field_validator("redact_patterns")
    @classmethod
    def _check_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"valid regular expressions, {pattern!r}: {exc}") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlparse(value)
        # A server on this machine may be reached through its Unix socket: ?host=/its/directory.
        local = any(v.startswith("/") for k, v in parse_qsl(parsed.query) if k == "host")
        if parsed.scheme not in ("postgres", "postgresql") or not (parsed.hostname or local):
            raise ValueError("a PostgreSQL URL such as postgresql://user:pass@host:5432/dsrflow")
        return value

    @field_validator("imap_username")
    @classmethod
    def _check_imap_login(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("imap_host") and not value:
            raise ValueError("the mailbox's login: it must be set when IMAP_HOST is")
        return value

    @field_validator("imap_ca_file")
    @classmethod
    def _check_ca_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("the path of a PEM CA bundle that exists")
        return value

    @field_validator("temporal_address", "smtp_host", "imap_host")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value or any(c.isspace() for c in value) or "/" in value:
            raise ValueError("a host name or host:port, without scheme or spaces")
        return value

    @field_validator("temporal_address")
    @classmethod
    def _check_temporal_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("host:port of the Temporal frontend, such as temporal:7233")
        return value

    @field_validator("public_url", "temporal_ui_public_url")
    @classmethod
    def _check_public_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("an absolute http(s) URL such as https://privacy.example.com")
        if info.field_name == "public_url" and (parsed.path.strip("/") or parsed.query or parsed.fragment):
            # Pages, redirects, forms and cookie paths are rooted at `/`: under a prefix the links
            # in letters would open, but the portal's forms and the console's sign-in would not.
            raise ValueError("the API's address without a path, such as https://privacy.example.com: "
                             "dsrflow serves its pages at the root of its own host name")
        return value.rstrip("/")

    @field_validator("s3_endpoint")
    @classmethod
    def _check_s3_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/"):
            raise ValueError("the store's http(s) URL without a path, such as https://s3.eu-west-1.amazonaws.com "
                             "or http://minio:9000")
        return value.rstrip("/")

    @field_validator("s3_bucket")
    @classmethod
    def _check_s3_bucket(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("storage") == "s3":
                raise ValueError("the bucket's name: it must be set when DSRFLOW_STORAGE=s3")
            return None
        if not _BUCKET.match(value):
            raise ValueError("a bucket name: 3 to 63 lower-case letters, digits, dots and hyphens")
        return value

    @field_validator("s3_prefix")
    @classmethod
    def _check_s3_prefix(cls, value: str) -> str:
        parts = value.strip("/").split("/") if value.strip("/") else []
        if any(part in ("", ".", "..") for part in parts) or "\\" in value:
            raise ValueError("a key prefix such as dsrflow/prod (no empty, . or .. parts)")
        return "/".join(parts)

    @field_validator("s3_secret_access_key")
    @classmethod
    def _check_s3_credentials(cls, value: str | None, info: ValidationInfo) -> str | None:
        # One without the other would silently fall back to the AWS variables for both.
        if (value is None) != (info.data.get("s3_access_key_id") is None):
            raise ValueError("set together with DSRFLOW_S3_ACCESS_KEY_ID (both, or neither to use the "
                             "standard AWS variables)")
        return value

    @field_validator("secret_key_b64")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        if value is not None:
            decode_secret(value)
        return value

    @field_validator("policy_path")
    @classmethod
    def _check_policy(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("the path of a policy YAML file that exists")
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _check_keys(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parse_key_list(value)
        return value

    # Derived values -------------------------------------------------------------------------

    @cached_property
    def keyring(self) -> list[tuple[str, bytes]] | None:
        """Keys from DSRFLOW_ENCRYPTION_KEYS, first one active; None when the variable is unset."""
        return parse_key_list(self.encryption_keys) if self.encryption_keys else None

    @cached_property
    def secret_key(self) -> bytes | None:
        return decode_secret(self.secret_key_b64) if self.secret_key_b64 else None

    @property
    def embedded_database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.postgres_port}/dsrflow"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or self.embedded_database_url

    @property
    def effective_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def effective_smtp_host(self) -> str:
        return self.smtp_host or "127.0.0.1"

    @property
    def base_url(self) -> str:
        """Where subjects and the Temporal UI reach the API (links in letters, codec endpoint)."""
        return self.public_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def temporal_ui_url(self) -> str:
        return self.temporal_ui_public_url or f"http://127.0.0.1:{self.temporal_ui_port}"


def _describe(error: ErrorDetails) -> str:
    """One line for one pydantic error: the variable, what it expects, what it got."""
    variable = str(error["loc"][0]) if error.get("loc") else "environment"
    if variable in Settings.model_fields:  # a default checked against another variable (s3_bucket)
        variable = str(Settings.model_fields[variable].validation_alias.choices[0])  # type: ignore[union-attr]
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    shown = "" if got is None or variable.endswith(("PASSWORD", "KEYS", "KEY", "TOKEN")) else f" (got {got!r})"
    if error["type"] in ("int_parsing", "greater_than_equal", "less_than_equal") and variable.endswith("_PORT"):
        message = f"expected {_PORT_HELP}"
    elif error["type"] == "bool_parsing":
        message = "expected true or false"
    elif message.startswith("Input should be "):  # a choice, a number out of its range
        message = f"expected {message.removeprefix('Input should be ')}"
    elif not message.startswith("expected"):
        message = f"expected {message}"
    return f"{variable}: {message}{shown}"


def load_settings() -> Settings:
    """Read the environment; raise SettingsError with one line per bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(e) for e in exc.errors())) from None
    except pydantic_settings.SettingsError as exc:
        # Raised before validation when a list-valued variable is not JSON.
        match = re.search(r'field "(\w+)"', str(exc))
        aliases = Settings.model_fields[match.group(1)].validation_alias if match else None
        alias = aliases.choices[0] if isinstance(aliases, AliasChoices) else "environment"  # every field has them
        raise SettingsError(f"{alias}: expected a JSON list such as [\"pattern\"]") from None
