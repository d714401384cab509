"""Remote codec endpoint for the Temporal Web UI: decodes payloads for display in the browser.

The UI posts `{"payloads": [...]}` (protobuf JSON) to `/codec/decode` and `/codec/encode`.
Compliance and admins only (a decoded history holds each staff action's input and its actor, as
the audit timeline does: `READABLE_BY`): a bearer token, or the console's session cookie, which
the UI sends when its codec setting "include cross-origin credentials" is on (CORS in api/app.py
allows the UI's origin with credentials). No CSRF token: the UI cannot send one, and encoding or decoding changes nothing;
which pages may read the answer is what CORS decides. A payload that is not encrypted is answered
marked as such, never passed through as if it had been decoded.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads

from api.auth import Staff, require_role
from api.deps import State
from api.read_models.staff_reach import READABLE_BY, WORKFLOW_HISTORY
from dsrflow.crypto.payload_codec import ENCODING, EncryptionCodec, UnknownKeyError

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


class CodecPayload(BaseModel):
    """A Temporal Payload in protobuf JSON: metadata values and data are base64."""

    metadata: dict[str, str] = Field(default_factory=dict, examples=[{"encoding": "anNvbi9wbGFpbg=="}])
    data: str = Field("", examples=["ImhlbGxvIg=="])


class CodecPayloads(BaseModel):
    payloads: list[CodecPayload]


UNENCRYPTED_MARK = "dsrflow-unencrypted"


def _marked(payload: Payload) -> Payload:
    """An unencrypted payload, shown as such: every payload dsrflow writes is encrypted, so a clear
    one was written by something else (a misconfigured worker, a signal sent straight to Temporal)
    and already sits in clear on the server. Passing it through would look like a decoded one."""
    encoding = payload.metadata.get("encoding", b"").decode(errors="replace")
    try:
        shown = payload.data.decode() if encoding.startswith("json/") else None
    except UnicodeDecodeError:
        shown = None
    warning = {"warning": "NOT ENCRYPTED: this payload is stored in clear on the Temporal server",
               "encoding": encoding,
               "data": shown if shown is not None else base64.b64encode(payload.data).decode()}
    return Payload(metadata={"encoding": b"json/plain", UNENCRYPTED_MARK: b"true"},
                   data=json.dumps(warning).encode())


def _decode(codec: EncryptionCodec, payloads: list[Payload]) -> list[Payload]:
    return [codec.decrypt(p) if p.metadata.get("encoding") == ENCODING else _marked(p) for p in payloads]


async def _transform(codec: EncryptionCodec, body: CodecPayloads, decode: bool) -> dict:
    try:
        payloads = list(json_format.ParseDict(body.model_dump(), Payloads()).payloads)
        result = _decode(codec, payloads) if decode else await codec.encode(payloads)
    except (json_format.ParseError, UnknownKeyError, InvalidTag, DecodeError) as exc:
        # Not base64, a key this deployment does not hold (named: a key's id is no secret, and the
        # operator needs it to put the key back), or tampered ciphertext.
        cause = str(exc) if isinstance(exc, UnknownKeyError) else type(exc).__name__
        raise RequestValidationError([{"loc": ("body", "payloads"), "type": "value_error",
                                       "msg": f"cannot {'decode' if decode else 'encode'}: {cause}"}]) from None
    return json_format.MessageToDict(Payloads(payloads=result))


@router.post("/decode")
async def decode(staff: Annotated[Staff, require_role(READABLE_BY[WORKFLOW_HISTORY], csrf=False)], body: CodecPayloads,
                 state: State) -> dict:
    return await _transform(state.codec, body, decode=True)


@router.post("/encode")
async def encode(staff: Annotated[Staff, require_role(READABLE_BY[WORKFLOW_HISTORY], csrf=False)], body: CodecPayloads,
                 state: State) -> dict:
    return await _transform(state.codec, body, decode=False)
