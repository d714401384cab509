"""Remote codec endpoint for the Temporal Web UI: decodes payloads for display in the browser.

The UI posts `{"payloads": [...]}` (protobuf JSON) to `/codec/decode` and `/codec/encode`.
Staff only: a bearer token, or the console's session cookie, which the UI sends when its codec
setting "include cross-origin credentials" is on (CORS in api/app.py allows the UI's origin with
credentials). No CSRF token: the UI cannot send one, and encoding or decoding changes nothing;
which pages may read the answer is what CORS decides.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payloads

from api.auth import Staff, require_role
from dsrflow.codec import EncryptionCodec
from dsrflow.keys import load_keyring

router = APIRouter(prefix="/codec", tags=["codec"])


class CodecCORSMiddleware:
    """CORS for the codec endpoint only: the UI's origin may call it with credentials, but not
    read anything else of ours (a console page, its CSRF token) with the staff's cookie."""

    def __init__(self, app: ASGIApp, *, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app, allow_origins=origins, allow_credentials=True, allow_methods=["POST", "OPTIONS"],
            allow_headers=["content-type", "x-namespace", "authorization"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        inner = self.cors if scope["type"] == "http" and scope["path"].startswith(f"{router.prefix}/") else self.app
        await inner(scope, receive, send)


def _codec(request: Request) -> EncryptionCodec:
    codec = getattr(request.app.state, "codec", None)
    if codec is None:
        codec = EncryptionCodec(load_keyring(request.app.state.dsr.settings))
        request.app.state.codec = codec
    return codec


async def _transform(request: Request, decode: bool) -> dict:
    payloads = json_format.ParseDict(await request.json(), Payloads())
    codec = _codec(request)
    result = await (codec.decode if decode else codec.encode)(list(payloads.payloads))
    return json_format.MessageToDict(Payloads(payloads=result))


@router.post("/decode")
async def decode(request: Request, staff: Staff = require_role("agent", csrf=False)) -> dict:
    return await _transform(request, decode=True)


@router.post("/encode")
async def encode(request: Request, staff: Staff = require_role("agent", csrf=False)) -> dict:
    return await _transform(request, decode=False)
