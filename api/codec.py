"""Remote codec endpoint for the Temporal Web UI: decodes payloads for display in the browser.

The UI posts `{"payloads": [...]}` (protobuf JSON) to `/codec/decode` and `/codec/encode`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from dsrflow.codec import EncryptionCodec
from dsrflow.keys import load_keyring

router = APIRouter(prefix="/codec", tags=["codec"])


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
async def decode(request: Request) -> dict:
    return await _transform(request, decode=True)


@router.post("/encode")
async def encode(request: Request) -> dict:
    return await _transform(request, decode=False)
