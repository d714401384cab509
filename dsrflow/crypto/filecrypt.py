"""Files encrypted at rest in chunks, written and read as streams (memory stays flat).

Each chunk is sealed with AES-GCM under a key derived from the secret; the associated data binds
the file id, the chunk's index and whether it is the last one, so chunks cannot be reordered,
swapped between files or cut off without detection.

Where the sealed bytes go is the caller's (dsrflow/infra/storage.py: a local file or an object in
a bucket): the writer seals into any sink, and the reader opens blocks of any size as they arrive.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from typing import Protocol

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


class Sink(Protocol):
    """Where sealed bytes go: a file opened for writing, or a storage back end's writer."""

    def write(self, data: bytes, /) -> int: ...

    def close(self) -> None: ...


class EncryptedWriter:
    """A write-only binary stream (what zipfile needs) that encrypts into `out`; closing it seals
    the last chunk and closes `out`."""

    def __init__(self, out: Sink, key: bytes, file_id: str) -> None:
        self._out = out
        self._closed = False
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
        if self._closed:
            return
        self._closed = True
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()
        self._out.close()

    @property
    def closed(self) -> bool:
        return self._closed


def decrypt_chunks(blocks: Iterable[bytes], key: bytes, file_id: str) -> Iterator[bytes]:
    """The clear chunks of a sealed file read as `blocks` (of any sizes). A sealed chunk is opened
    only once the next one has begun or the blocks have ended, since whether it is the last is
    part of what it was sealed with: memory holds a block and a chunk, whatever the file's size."""
    aead = AESGCM(key)
    buffer = bytearray()
    index = 0
    pending: bytes | None = None  # the latest whole sealed chunk, not yet known to be the last
    for block in blocks:
        buffer += block
        while len(buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buffer)
            if len(buffer) < _HEADER.size + length:
                break
            if pending is not None:
                yield _open(aead, pending, _aad(file_id, index, False))
                index += 1
            pending = bytes(buffer[_HEADER.size:_HEADER.size + length])
            del buffer[:_HEADER.size + length]
    if pending is None or buffer:
        raise ValueError("encrypted file is truncated")
    yield _open(aead, pending, _aad(file_id, index, True))


def _open(aead: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    return aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
