"""AES-GCM payload codec: every payload leaves the process encrypted, tagged with its key id.

Temporal stores workflow inputs, results and (with encoded failure attributes) error messages on
the server in the clear unless a codec encrypts them. The key id travels in the payload metadata so
keys can rotate: the first key encrypts, every configured key decrypts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
_NONCE_BYTES = 12


class UnknownKeyError(Exception):
    """A payload names a key id this process does not hold."""


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("EncryptionCodec needs at least one key")
        self._active_id, active_key = keys[0]
        self._active = AESGCM(active_key)
        self._by_id = {kid: AESGCM(key) for kid, key in keys}

    @property
    def active_key_id(self) -> str:
        return self._active_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(_NONCE_BYTES)
        # The key id is bound as associated data so a payload cannot be relabelled to another key.
        aad = self._active_id.encode()
        sealed = self._active.encrypt(nonce, payload.SerializeToString(), aad)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: aad},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        kid = payload.metadata.get(KEY_ID_METADATA, b"").decode()
        cipher = self._by_id.get(kid)
        if cipher is None:
            raise UnknownKeyError(f"payload encrypted with unknown key id {kid!r}")
        nonce, sealed = payload.data[:_NONCE_BYTES], payload.data[_NONCE_BYTES:]
        return Payload.FromString(cipher.decrypt(nonce, sealed, kid.encode()))

    def key_ids(self) -> Iterable[str]:
        return self._by_id.keys()
