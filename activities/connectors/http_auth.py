"""Credentials of an http system: read from the environment variables its configuration names
(never from the file), turned into request headers; OAuth 2.0 access tokens are fetched, cached
until shortly before they expire, and fetched again when the service answers 401."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from activities.connectors.base import PermanentConnectorError
from activities.connectors.bounded_http import AnswerTooLarge, NotJson, json_document, what_failed
from activities.connectors.http_answers import UnreadAnswer
from policy.http_model import ApiKeyAuth, Auth, BasicAuth, BearerAuth, HttpConfig, OAuth2Auth

_EARLY = 60  # seconds before expiry at which a token counts as expired
# The longest a token is used for, whatever the service says: Google's and HubSpot's live an hour
# at most, and a token that "expires" in a thousand years is one that is never renewed.
_LONGEST = 24 * 3600
# RFC 6750's b64token, the only characters a bearer token has (a CR or LF would end the header).
_BEARER = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def read_secrets(system: str, config: HttpConfig) -> dict[str, str]:
    """The values of every variable the configuration names; a missing one is an error naming
    the variable and the field that names it."""
    values: dict[str, str] = {}
    for name, field in sorted(config.env_names().items()):
        value = os.environ.get(name)
        if not value:
            raise PermanentConnectorError(
                f"system {system}: environment variable {name} ({field}) is not set")
        values[name] = value
    return values


def refuse_plain_http(system: str, config: HttpConfig) -> None:
    """Outside development, https only: the base URL's requests carry the credentials and the
    subjects' data, and an OAuth2 token URL is sent the client secret or a signed assertion."""
    urls = {"base_url": config.base_url}
    if isinstance(config.auth, OAuth2Auth):
        urls["auth.token_url"] = config.auth.token_url
    for field, url in urls.items():
        if urlsplit(url).scheme.lower() != "https":
            raise PermanentConnectorError(
                f"system {system}: {field} is not https: outside development {config.service}'s credentials and "
                "the subjects' data would cross the network readable by anyone on the path")


def _token_answer(document: Any, scope: str | None) -> tuple[str, float, str | None]:
    """(access token, seconds it is good for, a new refresh token) from a token endpoint's 2xx
    answer (RFC 6749 5.1); UnreadAnswer saying why when it is no bearer token for what was asked."""
    if not isinstance(document, dict) or not isinstance(document.get("access_token"), str):
        raise UnreadAnswer("no access_token")
    token = document["access_token"]
    if len(token) > 8192 or not _BEARER.fullmatch(token):
        raise UnreadAnswer("an access_token that is no bearer token")
    kind = document.get("token_type", "bearer")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise UnreadAnswer("a token of another type than bearer")
    granted = document.get("scope")
    # A service that grants other scopes than those asked says so (RFC 6749 5.1): a token for
    # something else than the deletion API is refused here rather than at every request.
    if scope and granted is not None and (not isinstance(granted, str) or set(scope.split()) - set(granted.split())):
        raise UnreadAnswer(f"a token for other scopes than {scope}")
    lifetime = document.get("expires_in")
    if lifetime is None:
        lifetime = 3600  # optional in RFC 6749; an hour is what these services give
    if isinstance(lifetime, str) and lifetime.isascii() and lifetime.isdigit():
        lifetime = int(lifetime)  # some endpoints send it as text
    if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or not 0 <= lifetime:
        raise UnreadAnswer("an expires_in that is no number of seconds")
    refresh = document.get("refresh_token")
    return token, min(float(lifetime), _LONGEST), refresh if isinstance(refresh, str) and refresh else None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def service_account_assertion(key: dict[str, Any], scope: str | None, audience: str, now: float) -> str:
    """A signed JWT (RS256) asserting a Google service account, for the jwt-bearer grant."""
    header = {"alg": "RS256", "typ": "JWT", "kid": key.get("private_key_id")}
    claims = {"iss": key["client_email"], "aud": audience, "iat": int(now), "exp": int(now) + 3600}
    if scope:
        claims["scope"] = scope
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    private = serialization.load_pem_private_key(key["private_key"].encode(), password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise PermanentConnectorError("the service-account key is not an RSA key (RS256 needs one)")
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


def _service_account(system: str, env: str, raw: str) -> dict[str, Any]:
    text = raw if raw.lstrip().startswith("{") else _read(system, env, raw)
    try:
        key: dict[str, Any] = json.loads(text)
        key["client_email"], key["private_key"]  # noqa: B018 - both are required
    except (ValueError, KeyError, TypeError):
        raise PermanentConnectorError(
            f"system {system}: {env} is not a service-account key (JSON with client_email and private_key)") from None
    return key


def _read(system: str, env: str, path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise PermanentConnectorError(f"system {system}: {env} names a file that cannot be read ({exc.strerror})") from None


class Credentials:
    def __init__(self, system: str, service: str, auth: Auth, secrets: dict[str, str], http: httpx.AsyncClient) -> None:
        self.system = system
        self.service = service
        self.auth = auth
        self.secrets = secrets
        self.http = http
        self._token: str | None = None
        self._expires_at = 0.0
        self._refresh_token = secrets.get(auth.refresh_token_env or "") if isinstance(auth, OAuth2Auth) else None

    @property
    def refreshable(self) -> bool:
        return isinstance(self.auth, OAuth2Auth)

    async def headers(self) -> dict[str, str]:
        auth = self.auth
        if isinstance(auth, BearerAuth):
            return {"Authorization": f"Bearer {self.secrets[auth.token_env]}"}
        if isinstance(auth, ApiKeyAuth):
            return {auth.header: f"{auth.prefix}{self.secrets[auth.key_env]}"}
        if isinstance(auth, BasicAuth):
            user = auth.username if auth.username is not None else self.secrets[auth.username_env or ""]
            pair = f"{user}:{self.secrets[auth.password_env]}".encode()
            return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
        if self._token is None or time.time() >= self._expires_at - _EARLY:
            await self._fetch_token()
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        """The service answered 401: the next request fetches a new token first."""
        self._token = None

    async def _fetch_token(self) -> None:
        auth = self.auth
        assert isinstance(auth, OAuth2Auth)
        form: dict[str, str] = {}
        basic: tuple[str, str] | None = None
        if auth.grant == "jwt_bearer":
            key = _service_account(self.system, auth.service_account_env or "",
                                   self.secrets[auth.service_account_env or ""])
            form = {"grant_type": JWT_BEARER,
                    "assertion": service_account_assertion(key, auth.scope, auth.token_url, time.time())}
        else:
            form["grant_type"] = auth.grant
            client_id, client_secret = self.secrets[auth.client_id_env or ""], self.secrets[auth.client_secret_env or ""]
            if auth.client_auth == "basic":
                basic = (client_id, client_secret)
            else:
                form.update(client_id=client_id, client_secret=client_secret)
            if auth.grant == "refresh_token":
                form["refresh_token"] = self._refresh_token or ""
            if auth.scope:
                form["scope"] = auth.scope
        try:
            # The client has no auth of its own: its default is none.
            response = await self.http.post(auth.token_url, data=form,
                                            auth=basic if basic is not None else httpx.USE_CLIENT_DEFAULT,
                                            headers={"Accept": "application/json"})
        except AnswerTooLarge:
            raise PermanentConnectorError(
                f"system {self.system}: {self.service}'s token endpoint answered more than a token: not read") from None
        except httpx.TransportError as exc:
            raise ConnectionError(f"system {self.system}: token endpoint unreachable ({what_failed(exc)})") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise ConnectionError(f"system {self.system}: {self.service} token endpoint answered HTTP {response.status_code}")
        if not response.is_success:
            raise PermanentConnectorError(
                f"system {self.system}: {self.service} refused the OAuth2 {auth.grant} grant "
                f"(HTTP {response.status_code}): check the credentials in "
                + ", ".join(sorted(self.auth_envs())))
        try:
            token, lifetime, refresh = _token_answer(json_document(response), auth.scope)
        except (NotJson, UnreadAnswer) as exc:
            raise PermanentConnectorError(
                f"system {self.system}: {self.service}'s token endpoint answered the OAuth2 {auth.grant} grant with "
                f"what is no token ({exc}): check auth.token_url") from None
        self._token, self._expires_at = token, time.time() + lifetime
        # Services that rotate refresh tokens send a new one; keep using the newest.
        if refresh:
            self._refresh_token = refresh

    def auth_envs(self) -> list[str]:
        return [v for k, v in self.auth.model_dump().items() if k.endswith("_env") and v]
