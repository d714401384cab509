"""What `DSRFLOW_ENV=production` refuses to start with.

Development fills every gap for convenience: keys generated into `$DSRFLOW_HOME`, the embedded
PostgreSQL without a password, the dev server's Web UI as the codec endpoint's CORS origin. Each of
those is a hole on a server reachable from the internet, so the api and the worker check the
settings first and stop with one line per problem, each naming the variable to set.
"""

from __future__ import annotations

from ipaddress import ip_address
from itertools import pairwise
from urllib.parse import urlparse

from dsrflow.setting_values import decode_secret, parse_key_list
from dsrflow.settings import Settings, SettingsError

# Passwords that ship as defaults (docker-compose.yml's fallbacks, the postgres image's examples)
# or that everyone tries first.
DEFAULT_PASSWORDS = frozenset({
    "", "dsrflow", "postgres", "temporal", "password", "secret", "changeme", "admin", "root",
})
# Random 32 bytes hold ~31 distinct values; fewer than 16 is a key typed by hand or made for a
# test (all zeros, a repeated phrase), never one drawn from a random source.
_MIN_DISTINCT_BYTES = 16


def _weak(key: bytes) -> bool:
    # A constant step between bytes is the other test favourite: bytes(range(32)).
    steps = {(later - earlier) % 256 for earlier, later in pairwise(key)}
    return len(set(key)) < _MIN_DISTINCT_BYTES or len(steps) == 1


def production_problems(settings: Settings) -> list[str]:
    """One line per reason this configuration must not serve production; empty when none."""
    problems: list[str] = []
    if not settings.secret_key_b64:
        problems.append("DSRFLOW_SECRET_KEY: must be set in production (base64 of 32 random "
                        "bytes); the key generated into DSRFLOW_HOME is for development")
    elif _weak(decode_secret(settings.secret_key_b64)):
        problems.append("DSRFLOW_SECRET_KEY: a known test or low-entropy key; use 32 random bytes "
                        "(openssl rand -base64 32)")
    if not settings.encryption_keys:
        problems.append("DSRFLOW_ENCRYPTION_KEYS: must be set in production; the demo key "
                        "generated into DSRFLOW_HOME is for development")
    else:
        weak = [kid for kid, key in parse_key_list(settings.encryption_keys) if _weak(key)]
        if weak:
            problems.append(f"DSRFLOW_ENCRYPTION_KEYS: key {', '.join(weak)} is a known test or "
                            "low-entropy key; use 32 random bytes (openssl rand -base64 32)")
    if not settings.database_url:
        problems.append("DSRFLOW_DATABASE_URL: must be set in production; the embedded "
                        "PostgreSQL has no password")
    elif (urlparse(settings.database_url).password or "").lower() in DEFAULT_PASSWORDS:
        problems.append("DSRFLOW_DATABASE_URL: the database password is empty or a default "
                        "(DSRFLOW_DB_PASSWORD in docker-compose.yml); choose a random one")
    problems.extend(_cors_problems(settings))
    problems.extend(_storage_problems(settings))
    problems.extend(_mail_problems(settings))
    problems.extend(_public_url_problems(settings))
    if settings.imap_host and not settings.imap_tls and not _loopback(settings.imap_host):
        # The mailbox's password, and every subject's e-mail, would cross the network in clear.
        problems.append(f"IMAP_TLS: false for {settings.imap_host}; read the privacy mailbox over TLS "
                        "(port 993), or from a server on this host (127.0.0.1)")
    return problems


def _mail_problems(settings: Settings) -> list[str]:
    if not settings.smtp_host:
        # The embedded sink is `dsrflow up`'s: a production worker would hand every letter (the
        # acknowledgements, the codes, the answers) to a port where nothing delivers it.
        return [f"SMTP_HOST: must be set in production; without it letters go to {settings.effective_smtp_host}:"
                f"{settings.smtp_port}, the development mail sink's address, and reach no subject"]
    if settings.smtp_starttls or settings.smtp_allow_plain or _loopback(settings.smtp_host):
        return []
    # Verification codes, download links, the subjects' data in the letters, and the relay's login.
    return [f"SMTP_STARTTLS: false for {settings.smtp_host}; letters and the relay's login would cross the "
            "network in clear: set SMTP_STARTTLS=true (port 587), use a relay on this host (127.0.0.1), or "
            "set SMTP_ALLOW_PLAIN=true when the network between is your own"]


def _public_url_problems(settings: Settings) -> list[str]:
    # Letters carry links with verification tokens and package downloads under this URL.
    if not settings.public_url:
        return [f"DSRFLOW_PUBLIC_URL: must be set in production; letters' links would point at "
                f"{settings.base_url}, which subjects cannot reach"]
    url = urlparse(settings.public_url)
    if url.scheme == "http" and not _loopback(url.hostname or ""):
        return [f"DSRFLOW_PUBLIC_URL: plain http to {url.hostname}; its links carry verification tokens and "
                "package downloads, so use https (a TLS proxy in front of the API)"]
    return []


def _storage_problems(settings: Settings) -> list[str]:
    # Objects are sealed before they leave, but over plain http the requests (signed with the
    # bucket's credentials, replayable for minutes) and the objects can be read or changed on the way.
    endpoint = urlparse(settings.s3_endpoint or "")
    if settings.storage != "s3" or endpoint.scheme != "http" or settings.s3_allow_http:
        return []
    if _loopback(endpoint.hostname or ""):
        return []
    return [f"DSRFLOW_S3_ENDPOINT: plain http to {endpoint.hostname}; use https, a store on this host "
            "(127.0.0.1), or set DSRFLOW_S3_ALLOW_HTTP=true when the network between is your own "
            "(docker-compose.yml's)"]


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        return False


def _cors_problems(settings: Settings) -> list[str]:
    # The codec endpoint trusts the Web UI's origin with the staff's cookie (api/rest/codec_endpoint.py).
    if not settings.temporal_ui_public_url:
        return [("DSRFLOW_TEMPORAL_UI_URL: must be set in production; the default is the dev "
                 "server's Web UI, which would be allowed to call the codec endpoint")]
    if urlparse(settings.temporal_ui_public_url).port == settings.temporal_ui_port:
        return [(f"DSRFLOW_TEMPORAL_UI_URL: port {settings.temporal_ui_port} is the dev server's "
                 "Web UI (DSRFLOW_TEMPORAL_UI_PORT); name the production UI's origin")]
    return []


def codec_cors_origins(settings: Settings) -> list[str]:
    """Origins that may call the codec endpoint with credentials."""
    # A browser's Origin header is scheme://host[:port]: a UI served under a path
    # (https://ops.example.com/temporal) calls from its host's origin.
    ui = urlparse(settings.temporal_ui_url)
    origin = f"{ui.scheme}://{ui.netloc}"
    if settings.environment == "production":
        return [origin]
    # `dsrflow up` opens the dev server's UI as localhost as well as 127.0.0.1.
    return [origin, f"http://localhost:{settings.temporal_ui_port}"]


def refuse_unsafe_production(settings: Settings) -> None:
    """Raise SettingsError naming every problem when production settings are unsafe."""
    if settings.environment != "production":
        return
    problems = production_problems(settings)
    if problems:
        raise SettingsError("refusing to start in production: " + "; ".join(problems))
