"""What every SaaS stand-in shares: a log of the requests it served, faults a test can inject
(a 429 with Retry-After, a 5xx), answers a test can tamper with (a broken or hostile service: a
cursor that never ends, a body that is not JSON), OAuth 2.0 access tokens that a test can
expire, list pages a test can make small, and a `/_standin` control API for stand-ins run as a
separate process.

Stand-ins speak the documented wire format of the service they replace (paths, auth, error
bodies, paging) closely enough that the shipped configuration under policy/http works against
either. They keep their data in memory."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

ErrorBody = Callable[[int, str], dict[str, Any]]
# What a stand-in's route answers: a JSON document, or a response of its own (an error, a 204).
# Such routes say `response_model=None`, so FastAPI encodes the document as it is.
Reply: TypeAlias = Response | dict[str, Any]


@dataclass
class Fault:
    status: int
    retry_after: str | None = None
    times: int = 1
    path: str | None = None  # only requests whose path contains this
    body: dict[str, Any] | None = None  # the error body (default: the service's for the status)


class FaultRequest(BaseModel):
    """`POST /_standin/faults`: a typed body, so a test or a user who leaves out `status` or
    misspells a field hears a 422 naming it, not a bare 500."""

    model_config = ConfigDict(extra="forbid")
    status: int = Field(ge=100, le=599)
    retry_after: str | None = None
    times: int = Field(1, ge=1)
    path: str | None = None
    body: dict[str, Any] | None = None


@dataclass
class Tamper:
    """A misbehaviour: the answer to requests whose path contains `path` (and of `method`) is
    what `rewrite` makes of the request and the stand-in's own answer's JSON document (None for
    an empty one): a document, answered with the same status, or a response of its own."""

    path: str
    rewrite: Callable[[Request, Any], Reply]
    method: str | None = None


@dataclass
class Served:
    method: str
    path: str
    status: int
    at: float  # when it arrived
    body: Any = None
    # What a wire test checks besides the body: the headers (lower-cased names) and the query.
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""


@dataclass
class Tokens:
    """OAuth 2.0 access tokens this stand-in issued, each with its expiry."""

    lifetime: int = 1800
    issued: dict[str, float] = field(default_factory=dict)

    def issue(self) -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        self.issued[token] = time.time() + self.lifetime
        return {"access_token": token, "token_type": "bearer", "expires_in": self.lifetime}

    def valid(self, token: str) -> bool:
        return self.issued.get(token, 0) > time.time()

    def expire_all(self) -> None:
        """Every token issued so far expires now (the client still believes they are good)."""
        self.issued = {token: 0.0 for token in self.issued}


@dataclass
class StandIn:
    name: str
    error_body: ErrorBody
    faults: list[Fault] = field(default_factory=list)
    tampers: list[Tamper] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    tokens: Tokens = field(default_factory=Tokens)
    max_page_size: int = 100

    # Headers the service sends with a 429 besides Retry-After (HubSpot's X-HubSpot-RateLimit-*).
    throttle_headers: dict[str, str] = field(default_factory=dict)

    def inject(self, status: int, *, retry_after: str | None = None, times: int = 1, path: str | None = None,
               body: dict[str, Any] | None = None) -> None:
        self.faults.append(Fault(status, retry_after, times, path, body))

    def tamper(self, path: str, rewrite: Callable[[Request, Any], Reply], *, method: str | None = None) -> None:
        self.tampers.append(Tamper(path, rewrite, method))

    async def tampered(self, request: Request, response: Response) -> Response:
        """The answer as a tamper switched on for this request rewrites it (else as it was)."""
        tamper = next((t for t in self.tampers
                       if t.path in request.url.path and t.method in (None, request.method)), None)
        if tamper is None:
            return response
        body: AsyncIterable[bytes] = getattr(response, "body_iterator")  # noqa: B009 - call_next's streaming answer
        raw = b"".join([chunk async for chunk in body])
        rewritten = tamper.rewrite(request, json.loads(raw) if raw else None)
        return rewritten if isinstance(rewritten, Response) else JSONResponse(rewritten, status_code=response.status_code)

    def error(self, status: int, message: str, headers: dict[str, str] | None = None,
              media_type: str = "application/json") -> JSONResponse:
        return JSONResponse(self.error_body(status, message), status_code=status, headers=headers,
                            media_type=media_type)

    def requests(self, method: str | None = None, contains: str = "") -> list[Served]:
        return [s for s in self.served if (method is None or s.method == method) and contains in s.path]

    def page_size(self, asked: Any, default: int, cap: int) -> int:
        try:
            wanted = int(asked) if asked is not None else default
        except ValueError:
            wanted = default
        return max(1, min(wanted, cap, self.max_page_size))


def media_type(request: Request) -> str:
    """The request's Content-Type without its parameters (`; charset=utf-8`), lower-cased."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def create_standin_app(standin: StandIn, *, media_type: str = "application/json") -> FastAPI:
    """An app that logs every request, answers injected faults first, and offers /_standin."""
    app = FastAPI(title=f"{standin.name} stand-in", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.standin = standin

    @app.middleware("http")
    async def faults_and_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path, arrived = request.url.path, time.time()
        if "/_standin/" in path:
            return await call_next(request)
        body = None
        if request.method in ("POST", "PUT", "PATCH"):
            raw = await request.body()
            body = raw.decode(errors="replace") if raw else None
        sent, query = {k.lower(): v for k, v in request.headers.items()}, request.url.query
        for fault in standin.faults:
            if fault.times > 0 and (fault.path is None or fault.path in path):
                fault.times -= 1
                standin.served.append(Served(request.method, path, fault.status, arrived, body, sent, query))
                headers = dict(standin.throttle_headers) if fault.status == 429 else {}
                if fault.retry_after:
                    headers["Retry-After"] = fault.retry_after
                if fault.body is not None:
                    return JSONResponse(fault.body, status_code=fault.status, headers=headers or None,
                                        media_type=media_type)
                return standin.error(fault.status, "injected by the stand-in", headers or None, media_type)
        response: Response = await standin.tampered(request, await call_next(request))
        standin.served.append(Served(request.method, path, response.status_code, arrived, body, sent, query))
        return response

    @app.post("/_standin/faults")
    async def add_fault(fault: FaultRequest) -> dict[str, Any]:
        standin.inject(fault.status, retry_after=fault.retry_after, times=fault.times, path=fault.path,
                       body=fault.body)
        return {"faults": len(standin.faults)}

    @app.post("/_standin/expire-tokens")
    async def expire_tokens() -> dict[str, Any]:
        standin.tokens.expire_all()
        return {"expired": len(standin.tokens.issued)}

    @app.get("/_standin/requests")
    async def served() -> list[dict[str, Any]]:
        return [{"method": s.method, "path": s.path, "status": s.status} for s in standin.served]

    return app
