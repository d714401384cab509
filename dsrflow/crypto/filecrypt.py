"""Files encrypted at rest in chunks, written and read as streams (memory stays flat).

Each chunk is sealed with AES-GCM under a key derived from the secret; the associated data binds
the file id, the chunk's index and whether it is the last one, so chunks cannot be reordered,
swapped between files or cut off without detection.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CHUNK = 64 * 1024
_HEADER = struct.Struct(">I")  # sealed length of the chunk that follows
_NONCE = 12


def file_key(secret: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(secret)


def _aad(file_id: str, index: int, last: bool) -> bytes:
    return f"{file_id}:{index}:{int(last)}".encode()


class EncryptedWriter:
    """A write-only binary stream (what zipfile needs) that encrypts to `path`."""

    def __init__(self, path: Path, key: bytes, file_id: str) -> None:
        self._out = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._aead = AESGCM(key)
        self._file_id = file_id
        self._buffer = bytearray()
        self._index = 0
        self._written = 0

    def write(self, data: bytes) -> int:
        self._buffer += data
        self._written += len(data)
        while len(self._buffer) > CHUNK:
            self._seal(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        return len(data)

    def _seal(self, chunk: bytes, last: bool) -> None:
        nonce = os.urandom(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, chunk, _aad(self._file_id, self._index, last))
        self._out.write(_HEADER.pack(len(sealed)) + sealed)
        self._index += 1

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if self._out.closed:
            return
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()
        self._out.close()

    @property
    def closed(self) -> bool:
        return self._out.closed


def decrypt_chunks(path: Path, key: bytes, file_id: str) -> Iterator[bytes]:
    aead = AESGCM(key)
    with open(path, "rb") as handle:
        index = 0
        while True:
            header = handle.read(_HEADER.size)
            if not header:
                raise ValueError("encrypted file is truncated")
            (length,) = _HEADER.unpack(header)
            sealed = handle.read(length)
            last = handle.peek(1) == b""
            nonce, body = sealed[:_NONCE], sealed[_NONCE:]
            yield aead.decrypt(nonce, body, _aad(file_id, index, last))
            if last:
                return
            index += 1
