"""Encrypted package files: round trip, and tampering, truncation or a swapped file are refused."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag

from dsrflow.crypto.filecrypt import CHUNK, EncryptedWriter, decrypt_chunks, file_key

KEY = file_key(os.urandom(32), "test")


def _write(path, data: bytes, file_id: str = "f1") -> None:
    writer = EncryptedWriter(open(path, "wb"), KEY, file_id)
    for i in range(0, len(data), 1000):
        writer.write(data[i:i + 1000])
    writer.close()


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK * 3 + 17])
def test_round_trip(tmp_path, size):
    data = os.urandom(size)
    _write(tmp_path / "p", data)
    assert b"".join(decrypt_chunks([(tmp_path / "p").read_bytes()], KEY, "f1")) == data
    # However the stored bytes arrive: a byte at a time, or in blocks across the chunks' edges.
    raw = (tmp_path / "p").read_bytes()
    for block in (1, 7, CHUNK + 1):
        blocks = (raw[i:i + block] for i in range(0, len(raw), block))
        assert b"".join(decrypt_chunks(blocks, KEY, "f1")) == data
    if size >= 32:  # shorter runs may appear in any random bytes by chance
        assert data[:32] not in (tmp_path / "p").read_bytes()


def test_tampering_truncation_and_swaps_are_detected(tmp_path):
    data = os.urandom(CHUNK * 2 + 5)
    path = tmp_path / "p"
    _write(path, data)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 1
    path.write_bytes(raw)
    with pytest.raises(InvalidTag):
        b"".join(decrypt_chunks([path.read_bytes()], KEY, "f1"))
    _write(path, data)
    with pytest.raises(InvalidTag):  # the same bytes presented as another package
        b"".join(decrypt_chunks([path.read_bytes()], KEY, "f2"))
    whole = path.read_bytes()
    first_chunk_end = 4 + int.from_bytes(whole[:4], "big")
    path.write_bytes(whole[:first_chunk_end])  # cut after the first chunk
    with pytest.raises(InvalidTag):
        b"".join(decrypt_chunks([path.read_bytes()], KEY, "f1"))
