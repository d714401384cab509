"""What the shipped compose files let others reach: only the API beyond the host, the Temporal UI
read-only, no mail catcher in production, no default secret (docs/security.md, "Deployment and
staff roles"). Docker does not run here: the tests read the files as Compose would."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

from tests.compose_support import (
    APP_SERVICES,
    OPERATOR_ENV,
    ROOT,
    app_environment,
    container_ports,
    environment,
    interpolate,
    load_compose,
    published_ports,
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def dev_override() -> dict:
    return load_compose("docker-compose.dev.yml")


# Secrets the operator must choose: the file has no default for any of them.
REQUIRED_SECRETS = (
    "DSRFLOW_ENCRYPTION_KEYS", "DSRFLOW_SECRET_KEY", "DSRFLOW_DB_PASSWORD", "TEMPORAL_DB_PASSWORD",
    "POSTGRES_PASSWORD", "SMTP_HOST", "DSRFLOW_METRICS_TOKEN", "GRAFANA_ADMIN_PASSWORD",
    "MINIO_ROOT_PASSWORD", "DSRFLOW_S3_SECRET_ACCESS_KEY",
)


def test_production_file_sends_through_the_operators_relay(compose: dict) -> None:
    # A mail catcher shows every verification code and package link to whoever reaches it.
    assert not any("mailpit" in str(service.get("image")) for service in compose["services"].values())
    for name in APP_SERVICES:
        env = app_environment(compose, name)
        assert env["SMTP_HOST"] == OPERATOR_ENV["SMTP_HOST"]
        assert env["SMTP_STARTTLS"] == "true"
    with pytest.raises(AssertionError, match="SMTP_HOST is required"):
        interpolate(compose["x-dsrflow-env"]["SMTP_HOST"], {})


def test_dev_override_adds_the_mail_catcher_on_loopback_only(compose: dict, dev_override: dict) -> None:
    catcher = dev_override["services"]["mailcatcher"]
    assert "mailpit" in catcher["image"]
    assert all(str(port).startswith("127.0.0.1:") for port in catcher["ports"])
    for name in APP_SERVICES:
        # Compose merges these maps into the production file's service of the same name.
        service = dev_override["services"][name]
        assert "mailcatcher" in service["depends_on"]
        env = {**app_environment(compose, name), **environment(service)}
        assert env["SMTP_HOST"] == "mailcatcher"
        assert int(env["SMTP_PORT"]) in container_ports(catcher)
        assert env["SMTP_STARTTLS"] == "false"
    assert set(dev_override["services"]) == {"mailcatcher", *APP_SERVICES}


def test_every_secret_must_be_chosen(compose: dict) -> None:
    """No default password or key: `docker compose up` stops, naming the variable, until it is set."""
    text = (ROOT / "docker-compose.yml").read_text()
    for name in REQUIRED_SECRETS:
        uses = re.findall(r"\$\{" + name + r"(:?[-?][^}]*)?\}", text)
        assert uses, f"{name} is not used"
        assert all(use.startswith(":?") for use in uses), f"{name} has a default or may be empty"
    with pytest.raises(AssertionError, match="DSRFLOW_DB_PASSWORD is required"):
        interpolate(compose["x-dsrflow-env"]["DSRFLOW_DATABASE_URL"], {})


def test_only_the_api_is_published_beyond_this_host(compose: dict, dev_override: dict) -> None:
    """The Temporal UI, Temporal's frontend and the mail catcher answer anyone without a login."""
    for services in (compose["services"], dev_override["services"]):
        for name, service in services.items():
            for port in service.get("ports", []):
                if name != "api":
                    assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_temporal_ui_is_read_only(compose: dict) -> None:
    ui = environment(compose["services"]["temporal-ui"])
    # Otherwise anyone reaching the UI can terminate, reset or signal every request.
    assert ui["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"
    origin = urlparse(app_environment(compose, "api")["DSRFLOW_TEMPORAL_UI_URL"])
    assert origin.port == published_ports(compose["services"]["temporal-ui"])[int(ui["TEMPORAL_UI_PORT"])]
