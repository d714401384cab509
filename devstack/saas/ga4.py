"""Google Analytics User Deletion API stand-in, with Google's OAuth 2.0 token endpoint.

Documented behaviour it keeps: service-account auth by the JWT bearer grant (`POST /token`,
grant_type urn:ietf:params:oauth:grant-type:jwt-bearer, an RS256-signed assertion whose `aud` is
the token URL and whose scope includes analytics.user.deletion), access tokens valid for an hour;
`POST /analytics/v3/userDeletion/userDeletionRequests:upsert` taking
{kind, id: {type: CLIENT_ID|USER_ID|APP_INSTANCE_ID, userId}, propertyId} and answering the
resource with `deletionRequestTime`; errors as {"error": {code, message, status, errors}}.

What Google refuses and a client could get wrong: a body that is not application/json or names a
field the resource does not have (Google's "Unknown name"), a property id that is not the GA4
property's number ("properties/123", a "G-" measurement id), a Universal Analytics
`webPropertyId` (those properties are gone), an assertion valid for more than an hour; with
`api_enabled` false, every upsert as Google answers when the Google Analytics API is not enabled
in the calling Cloud project (403, reason accessNotConfigured)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import Request
from fastapi.responses import JSONResponse

from devstack.saas.common import Reply, StandIn, bearer, create_standin_app, media_type

SCOPE = "https://www.googleapis.com/auth/analytics.user.deletion"
UPSERT = "/analytics/v3/userDeletion/userDeletionRequests:upsert"
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED"}
ID_TYPES = {"CLIENT_ID", "USER_ID", "APP_INSTANCE_ID"}


FIELDS = {"kind", "id", "propertyId", "webPropertyId", "firebaseProjectId", "deletionRequestTime"}
ID_FIELDS = {"type", "userId"}


def _error(status: int, message: str) -> dict[str, Any]:
    reason = {400: "invalid", 401: "authError", 403: "insufficientPermissions", 429: "rateLimitExceeded"}
    return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "INTERNAL"),
                      "errors": [{"message": message, "domain": "global", "reason": reason.get(status, "backendError")}]}}


def _refusal(body: Any) -> str | None:
    """Why Google would refuse this upsert body, if it would."""
    if not isinstance(body, dict) or not isinstance(body.get("id"), dict):
        return "Invalid value: id is required."
    unknown = sorted(set(body) - FIELDS) + sorted(f"id.{k}" for k in set(body["id"]) - ID_FIELDS)
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
    if body.get("webPropertyId") or body.get("firebaseProjectId"):
        return "Universal Analytics and Firebase project ids are no longer accepted: use propertyId."
    identity, property_id = body["id"], body.get("propertyId")
    if identity.get("type") not in ID_TYPES or not isinstance(identity.get("userId"), str) or not identity["userId"]:
        return "Invalid value: id.type must be one of " + ", ".join(sorted(ID_TYPES)) + " and id.userId is required."
    if not isinstance(property_id, str) or not property_id.isdigit():
        return f"Invalid property id {property_id!r}: the GA4 property's number is expected."
    return None


def _oauth_error(error: str, description: str) -> JSONResponse:
    """Google's token endpoint refuses as RFC 6749 does, not in its APIs' {"error": {...}} shape."""
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_service_account(client_email: str = "dsrflow@standin.iam.gserviceaccount.com") -> dict[str, str]:
    """A service-account key in Google's JSON key format."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "client_email": client_email, "private_key_id": "standin",
            "private_key": pem, "token_uri": "https://oauth2.googleapis.com/token"}


class DeletionData:
    def __init__(self) -> None:
        self.accounts: dict[str, Any] = {}  # client_email -> public key
        self.properties: set[str] = set()  # properties the service account may use; empty: any
        # Whether the Google Analytics API is enabled in the service account's Cloud project.
        self.api_enabled = True
        self.requests: list[dict[str, Any]] = []
        # What the property holds, by (id type, id): Google accepts a deletion request for any
        # string, and only one naming a browser or user it knows deletes anything.
        self.users: set[tuple[str, str]] = set()
        self.erased: set[tuple[str, str]] = set()

    def trust(self, service_account: dict[str, str]) -> None:
        private = serialization.load_pem_private_key(service_account["private_key"].encode(), password=None)
        self.accounts[service_account["client_email"]] = private.public_key()


def create_ga4_app() -> Any:
    data = DeletionData()
    standin = StandIn("Google Analytics", _error)
    standin.tokens.lifetime = 3600
    app = create_standin_app(standin)
    app.state.data = data

    def check_assertion(assertion: str, audience: str) -> str | None:
        try:
            header, claims, signature = assertion.split(".")
            document = json.loads(_unb64(claims))
            public = data.accounts[document["iss"]]
            public.verify(_unb64(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, KeyError, InvalidSignature):
            return "Invalid JWT Signature."
        if document.get("aud") != audience or document.get("exp", 0) < time.time():
            return "Invalid JWT: audience or expiry"
        if document.get("exp", 0) - document.get("iat", 0) > 3600 or document.get("iat", 0) > time.time() + 60:
            return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
        if SCOPE not in str(document.get("scope", "")).split():
            return "Invalid OAuth scope or ID token audience provided."
        return None

    @app.post("/token", response_model=None)
    async def token(request: Request) -> Reply:
        if media_type(request) != "application/x-www-form-urlencoded":
            return _oauth_error("invalid_request", "the body must be form-encoded")
        form = dict(parse_qsl((await request.body()).decode()))
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        problem = check_assertion(form.get("assertion", ""), str(request.url))
        if problem:
            return _oauth_error("invalid_grant", problem)
        return standin.tokens.issue()

    @app.post(UPSERT, response_model=None)
    async def upsert(request: Request) -> Reply:
        token_ = bearer(request)
        if token_ is None or not standin.tokens.valid(token_):
            return standin.error(401, "Request had invalid authentication credentials.")
        if media_type(request) != "application/json":
            return standin.error(400, "Invalid JSON payload received.")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return standin.error(400, "Invalid JSON payload received.")
        if not data.api_enabled:  # Google's answer, its reason accessNotConfigured
            message = ("Google Analytics API has not been used in project 1234 before or it is disabled. "
                       "Enable it by visiting the API Console, then retry.")
            return JSONResponse({"error": {"code": 403, "message": message, "status": "PERMISSION_DENIED", "errors": [
                {"message": message, "domain": "usageLimits", "reason": "accessNotConfigured"}]}}, status_code=403)
        if (problem := _refusal(body)) is not None:
            return standin.error(400, problem)
        identity, property_id = body["id"], body["propertyId"]
        if data.properties and property_id not in data.properties:
            return standin.error(403, "User does not have sufficient permissions for this property.")
        stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        data.requests.append({"type": identity["type"], "userId": identity["userId"], "propertyId": property_id})
        if (who := (identity["type"], identity["userId"])) in data.users:
            data.users.discard(who)
            data.erased.add(who)
        return {"kind": "analytics#userDeletionRequest", "id": identity, "propertyId": property_id,
                "deletionRequestTime": stamp}

    return app
