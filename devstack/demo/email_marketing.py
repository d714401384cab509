"""The demo "email marketing" processor: an HTTP service speaking OpenDSR v2 (processor side).

    python -m devstack.demo.email_marketing --port P --database-url URL --home DIR [--delay S]

Endpoints, under `/opendsr`:
    GET    /discovery                      what we support, and where our certificate is
    GET    /cert.pem                       the certificate that signs callbacks and responses
    POST   /requests                       a new request (201; idempotent on subject_request_id)
    GET    /requests/{id}                  its status
    DELETE /requests/{id}                  cancel it while pending (202)
    GET    /requests/{id}/results?token=   access/portability results once completed
    POST   /unsubscribe                    extension, see `unsubscribe` below

Each request is carried out `completion_delay` seconds after receipt (see email_marketing_jobs),
then every `status_callback_urls` entry receives the signed status. JSON responses are signed too
(`X-OpenDSR-Signature` over the exact body bytes, `X-OpenDSR-Processor-Domain`).

This is a demo: there is no API authentication (the specification leaves it to the processor)
and the certificate is self-signed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hmac
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg
import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from activities.connectors.opendsr_signature import generate_processor_identity
from activities.connectors.tls import tls_context
from devstack.demo.email_marketing_db import (
    email_hash,
    ensure_email_marketing_database,
    ensure_schema,
    unsubscribe_subject,
)
from devstack.demo.email_marketing_jobs import API_VERSION, RequestProcessor, canonical_json, rfc3339
from devstack.demo_names import OPENDSR_BASE_PATH
from dsrflow.infra.db import PooledConnection

__all__ = ["BASE_PATH", "create_email_marketing_app", "ensure_email_marketing_database", "main"]

BASE_PATH = OPENDSR_BASE_PATH
SUPPORTED_IDENTITIES = [("email", "raw"), ("email", "sha256")]
REQUEST_TYPES = ("access", "portability", "erasure")
_UUID4 = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
_SHA256 = r"^[0-9a-f]{64}$"


class Identity(BaseModel):
    identity_type: str
    identity_value: str = Field(min_length=1, max_length=320)
    identity_format: str


class SubjectRequest(BaseModel):
    """The body of `POST /requests`; unknown fields (e.g. other processors' extensions) ignored."""

    model_config = ConfigDict(extra="ignore")

    subject_request_id: str = Field(pattern=_UUID4)  # the specification asks for lower-case v4
    subject_request_type: Literal["access", "portability", "erasure"]
    subject_identities: list[Identity] = Field(min_length=1, max_length=20)
    submitted_time: AwareDatetime
    regulation: Literal["gdpr", "ccpa"]
    api_version: str | None = None
    status_callback_urls: list[str] = Field(default_factory=list, max_length=10)

    @field_validator("status_callback_urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError("each status callback URL must be an absolute http(s) URL")
        return urls



class UnsubscribeRequest(BaseModel):
    email_hash: str | None = Field(None, pattern=_SHA256)
    identities: list[Identity] = Field(default_factory=list, max_length=20)


def identity_hashes(identities: list[Identity]) -> list[str]:
    """Hashes of the identities we support; raw addresses are hashed here and never stored."""
    hashes: set[str] = set()
    for identity in identities:
        pair = (identity.identity_type, identity.identity_format)
        if pair == ("email", "raw"):
            hashes.add(email_hash(identity.identity_value))
        elif pair == ("email", "sha256") and re.fullmatch(_SHA256, identity.identity_value.lower()):
            hashes.add(identity.identity_value.lower())
    return sorted(hashes)


def _error(status: int, message: str, errors: list[dict[str, str]] | None = None) -> Response:
    """The specification's error object. Messages name fields, never submitted values."""
    body: dict[str, Any] = {"code": status, "message": message}
    if errors:
        body["errors"] = errors
    return Response(canonical_json({"error": body}), status_code=status, media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def _validation_error(exc: ValidationError) -> Response:
    errors = [
        {"domain": "Validation", "reason": e["type"],
         "message": f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"}
        for e in exc.errors(include_input=False, include_url=False)
    ]
    return _error(400, errors[0]["message"] if errors else "invalid request", errors)


def create_email_marketing_app(
    database_url: str,
    *,
    public_url: str,
    key_pem: bytes,
    cert_pem: bytes,
    completion_delay: float = 2.0,
    controller_id: str = "connexeon",
    callback_attempts: int = 5,
    callback_backoff: float = 0.5,
) -> FastAPI:
    """The processor app. `public_url` is where it is reached (scheme://host:port, no path): it
    names the certificate, results and extension URLs and the processor domain."""
    api_url = public_url.rstrip("/") + BASE_PATH

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Given back without asyncpg's reset round trip, as dsrflow's own are: no session state here.
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=5, connection_class=PooledConnection)
        async with pool.acquire() as conn:
            await ensure_schema(conn)
        # The process's one TLS context (activities/connectors/tls.py): each client built its own, 33 ms.
        http = httpx.AsyncClient(timeout=10, verify=tls_context())
        processor = RequestProcessor(
            pool, http, controller_id=controller_id, api_url=api_url, key_pem=key_pem,
            callback_attempts=callback_attempts, callback_backoff=callback_backoff,
        )
        app.state.processor = processor
        await processor.resume()
        try:
            yield
        finally:
            await processor.close()
            await http.aclose()
            await pool.close()

    app = FastAPI(title="Demo email marketing (OpenDSR v2 processor)", lifespan=lifespan)
    router = APIRouter(prefix=BASE_PATH)

    def processor_of(request: Request) -> RequestProcessor:
        processor: RequestProcessor = request.app.state.processor
        return processor

    def signed(request: Request, document: dict[str, Any], status: int = 200) -> Response:
        body = canonical_json(document)
        return Response(body, status_code=status, media_type="application/json",
                        headers=processor_of(request).signed_headers(body))

    @router.get("/discovery")
    async def discovery(request: Request) -> Response:
        return signed(request, {
            "api_version": API_VERSION,
            "supported_identities": [
                {"identity_type": kind, "identity_format": form} for kind, form in SUPPORTED_IDENTITIES
            ],
            "supported_subject_request_types": list(REQUEST_TYPES),
            "processor_certificate": f"{api_url}/cert.pem",
            # Not part of OpenDSR v2: see `unsubscribe`.
            "extensions": {"unsubscribe": {"url": f"{api_url}/unsubscribe"}},
        })

    @router.get("/cert.pem")
    async def certificate() -> Response:
        return Response(cert_pem, media_type="application/x-pem-file")

    @router.post("/requests")
    async def create_request(request: Request) -> Response:
        try:
            submitted = SubjectRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            return _validation_error(exc)
        hashes = identity_hashes(submitted.subject_identities)
        if not hashes:
            return _error(400, "subject_identities: no supported identity (email as raw or sha256)")
        processor = processor_of(request)
        received = dt.datetime.now(dt.UTC)
        expected = received + dt.timedelta(seconds=completion_delay)
        async with processor.pool.acquire() as conn:
            row = await conn.fetchrow(
                "INSERT INTO dsr_requests (subject_request_id, subject_request_type, regulation, "
                "identity_hashes, submitted_time, received_time, expected_completion_time, api_version, "
                "request_status, status_changed_time, status_callback_urls, results_token) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $6, $9, $10) "
                "ON CONFLICT (subject_request_id) DO NOTHING RETURNING *",
                submitted.subject_request_id, submitted.subject_request_type, submitted.regulation,
                hashes, submitted.submitted_time, received, expected, submitted.api_version or API_VERSION,
                submitted.status_callback_urls, secrets.token_urlsafe(24),
            )
            if row is None:
                # A retry of a request we already have: same answer, no second job. The same id
                # for a different request is the controller's mistake.
                row = await conn.fetchrow(
                    "SELECT * FROM dsr_requests WHERE subject_request_id = $1", submitted.subject_request_id
                )
                if (row["subject_request_type"], sorted(row["identity_hashes"])) != (
                    submitted.subject_request_type, hashes
                ):
                    return _error(409, "subject_request_id is already used by a different request")
            else:
                processor.schedule(submitted.subject_request_id, row["expected_completion_time"])
        return signed(request, {
            "controller_id": controller_id,
            "expected_completion_time": rfc3339(row["expected_completion_time"]),
            "received_time": rfc3339(row["received_time"]),
            "subject_request_id": submitted.subject_request_id,
            "api_version": API_VERSION,
        }, status=201)

    async def find(request: Request, request_id: str) -> asyncpg.Record | None:
        try:
            uuid.UUID(request_id)
        except ValueError:
            return None
        async with processor_of(request).pool.acquire() as conn:
            return await conn.fetchrow("SELECT * FROM dsr_requests WHERE subject_request_id = $1", request_id)

    @router.get("/requests/{request_id}")
    async def request_status(request: Request, request_id: str) -> Response:
        row = await find(request, request_id)
        if row is None:
            return _error(404, "no such subject_request_id")
        return signed(request, processor_of(request).status_document(row))

    @router.delete("/requests/{request_id}")
    async def cancel_request(request: Request, request_id: str) -> Response:
        if await find(request, request_id) is None:
            return _error(404, "no such subject_request_id")
        processor = processor_of(request)
        async with processor.pool.acquire() as conn:
            row = await conn.fetchrow(
                "UPDATE dsr_requests SET request_status = 'cancelled', status_changed_time = now(), "
                "callbacks_due = status_callback_urls "
                "WHERE subject_request_id = $1 AND request_status = 'pending' RETURNING *",
                request_id,
            )
        if row is None:
            return _error(400, "only a pending request can be cancelled")
        processor.unschedule(request_id)
        processor.deliver_soon(request_id)
        return signed(request, {
            "controller_id": controller_id,
            "subject_request_id": str(row["subject_request_id"]),
            "received_time": rfc3339(row["status_changed_time"]),
            "api_version": API_VERSION,
        }, status=202)

    @router.get("/requests/{request_id}/results")
    async def request_results(request: Request, request_id: str, token: str = "") -> Response:
        row = await find(request, request_id)
        if row is None or row["results"] is None or row["request_status"] != "completed":
            return _error(404, "no results for this subject_request_id")
        if not hmac.compare_digest(token.encode(), (row["results_token"] or "").encode()):
            return _error(403, "results token does not match")
        return signed(request, json.loads(row["results"]))

    @router.post("/unsubscribe")
    async def unsubscribe(request: Request) -> Response:
        """Extension, not part of OpenDSR v2 (which has no objection type): stop direct marketing
        to the subject and suppress the address, for an Art. 21(3) objection. Body: `email_hash`
        (SHA-256 of the lower-cased address) or `identities` as in a request. Deliberately minimal:
        synchronous, no callback, no request record."""
        try:
            body = UnsubscribeRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            return _validation_error(exc)
        hashes = identity_hashes(body.identities)
        if body.email_hash:
            hashes = sorted({*hashes, body.email_hash})
        if not hashes:
            return _error(400, "give email_hash or a supported identity")
        async with processor_of(request).pool.acquire() as conn:
            matched, unsubscribed = await unsubscribe_subject(conn, hashes)
        return signed(request, {"matched": matched, "unsubscribed": unsubscribed, "suppressed": True})

    app.include_router(router)
    return app


def load_or_create_identity(home: Path, common_name: str) -> tuple[bytes, bytes]:
    """The processor's key and certificate, generated on first start and kept in `home`."""
    key_path, cert_path = home / "opendsr-key.pem", home / "cert.pem"
    if not (key_path.exists() and cert_path.exists()):
        home.mkdir(parents=True, exist_ok=True)
        key_pem, cert_pem = generate_processor_identity(common_name)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        cert_path.write_bytes(cert_pem)
    return key_path.read_bytes(), cert_path.read_bytes()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m devstack.demo.email_marketing", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--home", type=Path, required=True, help="directory for the key and certificate")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds before a request is carried out")
    parser.add_argument("--public-url", help="default http://127.0.0.1:PORT")
    args = parser.parse_args(argv)
    public_url = args.public_url or f"http://127.0.0.1:{args.port}"
    key_pem, cert_pem = load_or_create_identity(args.home, urlsplit(public_url).hostname or "127.0.0.1")
    asyncio.run(ensure_email_marketing_database(None, args.database_url))
    app = create_email_marketing_app(
        args.database_url, public_url=public_url, key_pem=key_pem, cert_pem=cert_pem,
        completion_delay=args.delay,
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info")


if __name__ == "__main__":
    main()
