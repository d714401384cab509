"""DSRFLOW_ENV=production refuses to start with development conveniences that are holes on a server.

Each case starts from a sound production environment and spoils one thing; the real settings
loader reads it and the refusal names the variable to fix. The api and worker are started as the
real processes to show they stop before serving anything.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys

import httpx
import pytest

from dsrflow.infra.production import refuse_unsafe_production
from dsrflow.settings import SettingsError, load_settings

TEST_KEY = base64.b64encode(bytes(range(32))).decode()  # the key tests/test_compose.py once used
ZEROS = base64.b64encode(bytes(32)).decode()


def sound_environment() -> dict[str, str]:
    return {
        "DSRFLOW_ENV": "production",
        "DSRFLOW_SECRET_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "DSRFLOW_ENCRYPTION_KEYS": "k2:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "DSRFLOW_DATABASE_URL": f"postgresql://dsrflow:{secrets.token_urlsafe(16)}@db.internal:5432/dsrflow",
        "DSRFLOW_TEMPORAL_UI_URL": "https://temporal-ui.example.com",
        "SMTP_HOST": "relay.example.com", "SMTP_PORT": "587", "SMTP_STARTTLS": "true",
        "DSRFLOW_PUBLIC_URL": "https://privacy.example.com",
    }


SPOILED = [
    ("DSRFLOW_PUBLIC_URL", None, "DSRFLOW_PUBLIC_URL: must be set in production"),
    ("DSRFLOW_PUBLIC_URL", "http://privacy.example.com", "DSRFLOW_PUBLIC_URL: plain http to privacy.example.com"),
    ("DSRFLOW_SECRET_KEY", None, "DSRFLOW_SECRET_KEY: must be set in production"),
    ("DSRFLOW_SECRET_KEY", TEST_KEY, "DSRFLOW_SECRET_KEY: a known test or low-entropy key"),
    ("DSRFLOW_ENCRYPTION_KEYS", None, "DSRFLOW_ENCRYPTION_KEYS: must be set in production"),
    ("DSRFLOW_ENCRYPTION_KEYS", f"k1:{ZEROS}", "DSRFLOW_ENCRYPTION_KEYS: key k1 is a known test"),
    ("DSRFLOW_DATABASE_URL", None, "DSRFLOW_DATABASE_URL: must be set in production"),
    ("DSRFLOW_DATABASE_URL", "postgresql://dsrflow:dsrflow@postgres:5432/dsrflow",
     "DSRFLOW_DATABASE_URL: the database password is empty or a default"),
    ("DSRFLOW_DATABASE_URL", "postgresql://postgres@db:5432/dsrflow",
     "DSRFLOW_DATABASE_URL: the database password is empty or a default"),
    ("DSRFLOW_TEMPORAL_UI_URL", None, "DSRFLOW_TEMPORAL_UI_URL: must be set in production"),
    ("DSRFLOW_TEMPORAL_UI_URL", "http://localhost:8233", "DSRFLOW_TEMPORAL_UI_URL: port 8233 is the dev server"),
]


def _apply(monkeypatch: pytest.MonkeyPatch, env: dict[str, str | None]) -> None:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


@pytest.mark.parametrize(("variable", "value", "message"), SPOILED)
def test_each_unsafe_setting_is_refused_by_name(monkeypatch, variable, value, message):
    _apply(monkeypatch, {**sound_environment(), variable: value})
    with pytest.raises(SettingsError) as refused:
        refuse_unsafe_production(load_settings())
    assert message in str(refused.value)
    # One problem, one line: the sound variables are not blamed.
    assert str(refused.value).count(": ") == 2, str(refused.value)
    assert TEST_KEY not in str(refused.value) and ZEROS not in str(refused.value)


def test_sound_production_settings_start_and_development_is_unchanged(monkeypatch):
    _apply(monkeypatch, sound_environment())
    refuse_unsafe_production(load_settings())
    # Development keeps generating its keys and using the embedded database.
    _apply(monkeypatch, {name: None for name in sound_environment()})
    refuse_unsafe_production(load_settings())


def _start(command: str, env: dict[str, str | None], tmp_path) -> subprocess.CompletedProcess:
    merged = {**os.environ, "DSRFLOW_HOME": str(tmp_path)}
    for name, value in env.items():
        merged.pop(name, None)
        if value is not None:
            merged[name] = value
    return subprocess.run([sys.executable, "-m", "cli.main", command], env=merged,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["api", "worker"])
def test_the_real_process_refuses_to_start_naming_every_variable(command, tmp_path):
    spoiled = {**sound_environment(), "DSRFLOW_SECRET_KEY": TEST_KEY, "DSRFLOW_ENCRYPTION_KEYS": None,
               "DSRFLOW_DATABASE_URL": "postgresql://dsrflow:dsrflow@postgres:5432/dsrflow",
               "DSRFLOW_TEMPORAL_UI_URL": None}
    done = _start(command, spoiled, tmp_path)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert line.startswith("error: refusing to start in production:") and "\n" not in line
    for variable in ("DSRFLOW_SECRET_KEY", "DSRFLOW_ENCRYPTION_KEYS", "DSRFLOW_DATABASE_URL",
                     "DSRFLOW_TEMPORAL_UI_URL"):
        assert variable in line
    assert TEST_KEY not in line
    # Nothing was generated in its place: no development key file appeared.
    assert not (tmp_path / "keys").exists() and not (tmp_path / "secret").exists()


async def test_production_codec_does_not_trust_the_dev_ui_origin(monkeypatch):
    """A page on the dev server's UI port cannot call the codec endpoint with a staff cookie."""
    from api.app import create_app

    _apply(monkeypatch, sound_environment())
    app = create_app(load_settings())
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        for origin, allowed in (("http://localhost:8233", False), ("http://127.0.0.1:8233", False),
                                ("https://temporal-ui.example.com", True)):
            answer = await http.options("/codec/decode", headers={**preflight, "origin": origin})
            assert (answer.headers.get("access-control-allow-origin") == origin) is allowed, origin


@pytest.mark.parametrize(("endpoint", "allow_http", "refused"), [
    ("http://s3.internal:9000", None, True),
    ("http://10.0.0.5:9000", "false", True),
    ("http://minio:9000", "true", False),  # docker-compose.yml: a network of its own
    ("http://127.0.0.1:9000", None, False),
    ("http://localhost:9000", None, False),
    ("http://[::1]:9000", None, False),
    ("https://s3.eu-west-1.amazonaws.com", None, False),
])
def test_plain_http_to_the_package_storage_is_refused_beyond_this_host(monkeypatch, endpoint, allow_http, refused):
    for name, value in {**sound_environment(), "DSRFLOW_STORAGE": "s3", "DSRFLOW_S3_BUCKET": "dsrflow",
                        "DSRFLOW_S3_ENDPOINT": endpoint}.items():
        monkeypatch.setenv(name, value)
    if allow_http:
        monkeypatch.setenv("DSRFLOW_S3_ALLOW_HTTP", allow_http)
    if not refused:
        refuse_unsafe_production(load_settings())
        return
    with pytest.raises(SettingsError) as caught:
        refuse_unsafe_production(load_settings())
    assert "DSRFLOW_S3_ENDPOINT: plain http to " in str(caught.value)
    assert "DSRFLOW_S3_ALLOW_HTTP" in str(caught.value)


def test_the_privacy_mailbox_is_read_over_tls_unless_its_server_is_on_this_host(monkeypatch):
    """Its password and every subject's e-mail would otherwise cross the network in clear."""
    mailbox = {"IMAP_HOST": "imap.example.com", "IMAP_USERNAME": "privacy", "IMAP_PASSWORD": "s3cret-imap"}
    _apply(monkeypatch, {**sound_environment(), **mailbox, "IMAP_TLS": "false"})
    with pytest.raises(SettingsError) as refused:
        refuse_unsafe_production(load_settings())
    assert "IMAP_TLS: false for imap.example.com" in str(refused.value) and "s3cret-imap" not in str(refused.value)
    for fine in ({"IMAP_TLS": "true"}, {"IMAP_TLS": "false", "IMAP_HOST": "127.0.0.1"}):
        _apply(monkeypatch, {**sound_environment(), **mailbox, **fine})
        refuse_unsafe_production(load_settings())


def test_letters_go_to_a_relay_and_over_tls_unless_it_is_on_this_host(monkeypatch):
    """Without SMTP_HOST a production worker handed every letter to the development sink's port,
    where nothing delivers it; with a relay elsewhere and no STARTTLS, the letters (codes, links,
    the subject's data) and the relay's login crossed the network in clear. Both are refused,
    naming the variable; a relay on this host, or one the operator vouches for, is not."""
    relay = {"SMTP_HOST": "relay.example.com", "SMTP_PASSWORD": "s3cret-smtp"}
    environment = {**sound_environment(), "SMTP_HOST": None, "SMTP_PORT": None, "SMTP_STARTTLS": None,
                   "SMTP_ALLOW_PLAIN": None}
    _apply(monkeypatch, environment)
    with pytest.raises(SettingsError) as refused:
        refuse_unsafe_production(load_settings())
    assert "SMTP_HOST: must be set in production" in str(refused.value)
    _apply(monkeypatch, {**environment, **relay, "SMTP_STARTTLS": "false"})
    with pytest.raises(SettingsError) as refused:
        refuse_unsafe_production(load_settings())
    assert "SMTP_STARTTLS: false for relay.example.com" in str(refused.value) and "s3cret" not in str(refused.value)
    for fine in ({"SMTP_STARTTLS": "true"}, {"SMTP_STARTTLS": "false", "SMTP_HOST": "127.0.0.1"},
                 {"SMTP_STARTTLS": "false", "SMTP_ALLOW_PLAIN": "true"}):
        _apply(monkeypatch, {**environment, **relay, **fine})
        refuse_unsafe_production(load_settings())
