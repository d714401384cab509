"""Request body caps, applied at the ASGI layer before any route reads a byte.

FastAPI reads and parses a JSON or form body before the route's first line runs: before a
callback's signature is checked, before the rate limiter counts the client. Without a cap, one
anonymous client could make any process buffer and parse as much as it sends. So every request
body is capped here: a declared `Content-Length` over the cap is refused before reading, and a
streamed (chunked) body is counted as it arrives and refused the moment it passes the cap.
Either way the answer is 413 problem+json and the route never sees the body.

The manual processors' upload route streams files of up to the policy's own limit
(api/callbacks/processor_uploads.py counts them against that limit as they arrive): it is the one route
left to enforce its own cap, and the same route's plain confirmation form reads with
`read_capped`.
"""

from __future__ import annotations

import re

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response

KIB = 1024
# Every form and JSON body we take is a few kilobytes at most; this leaves room for a
# rectification with many corrections or a suppression check of 1000 addresses.
DEFAULT_LIMIT = 256 * KIB
# (method, path pattern, limit; None: the route enforces its own)
ROUTE_LIMITS: tuple[tuple[str, re.Pattern[str], int | None], ...] = (
    # The Temporal Web UI sends a whole history's payloads to decode.
    ("POST", re.compile(r"/codec/(de|en)code"), 8 * 1024 * KIB),
    # Manual processors' exports: api/callbacks/processor_uploads.py streams them against the policy's limits.
    ("POST", re.compile(r"/v1/callbacks/manual/[^/]+"), None),
)


class BodyTooLarge(HTTPException):
    """Raised from `receive` inside the route: FastAPI lets its own HTTPException through the body
    parser (anything else it reports as 400), and the app's handler answers problem+json."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "Request body too large")
        self.limit = limit


async def read_capped(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) the moment it passes `limit`: for a route the middleware
    leaves to itself."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def limit_for(method: str, path: str) -> int | None:
    for route_method, pattern, limit in ROUTE_LIMITS:
        if method == route_method and pattern.fullmatch(path):
            return limit
    return DEFAULT_LIMIT


def _too_large(limit: int):
    return problem_response(413, "Request body too large",
                            f"the body of this request may be at most {limit // KIB} KiB")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = limit_for(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if not declared.isdigit() and declared:
            await problem_response(400, "Bad request", "Content-Length must be a number")(scope, receive, send)
            return
        if declared and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return

        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if started:  # a route that streams its answer while reading: only the connection can go
                raise
            await _too_large(limit)(scope, receive, send)
