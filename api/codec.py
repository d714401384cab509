"""Remote codec endpoint for the Temporal Web UI: decodes payloads for display in the browser.

The UI posts `{"payloads": [...]}` (protobuf JSON) to `/codec/decode` and `/codec/encode`.
Staff only: a bearer token, or the console's session cookie, which the UI sends when its codec
setting "include cross-origin credentials" is on (CORS in api/app.py allows the UI's origin with
credentials). No CSRF token: the UI cannot send one, and encoding or decoding changes nothing;
which pages may read the answer is what CORS decides.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf.message import DecodeError
from pydantic import BaseModel, Field
from google.protobuf import json_format
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payloads

from api.auth import Staff, require_role
from dsrflow.codec import EncryptionCodec, UnknownKeyError
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


class CodecPayload(BaseModel):
    """A Temporal Payload in protobuf JSON: metadata values and data are base64."""

    metadata: dict[str, str] = Field(default_factory=dict, examples=[{"encoding": "anNvbi9wbGFpbg=="}])
    data: str = Field("", examples=["ImhlbGxvIg=="])


class CodecPayloads(BaseModel):
    payloads: list[CodecPayload]


async def _transform(request: Request, body: CodecPayloads, decode: bool) -> dict:
    codec = _codec(request)
    try:
        payloads = json_format.ParseDict(body.model_dump(), Payloads())
        result = await (codec.decode if decode else codec.encode)(list(payloads.payloads))
    except (json_format.ParseError, UnknownKeyError, InvalidTag, DecodeError) as exc:
        # Not base64, a key this deployment does not hold, or tampered ciphertext.
        raise RequestValidationError([{"loc": ("body", "payloads"), "type": "value_error",
                                       "msg": f"cannot {'decode' if decode else 'encode'}: {type(exc).__name__}"}]) from None
    return json_format.MessageToDict(Payloads(payloads=result))


@router.post("/decode")
async def decode(body: CodecPayloads, request: Request, staff: Staff = require_role("agent", csrf=False)) -> dict:
    return await _transform(request, body, decode=True)


@router.post("/encode")
async def encode(body: CodecPayloads, request: Request, staff: Staff = require_role("agent", csrf=False)) -> dict:
    return await _transform(request, body, decode=False)
