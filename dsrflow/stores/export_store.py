"""Where processors' uploaded exports live: one object per upload, `uploads/<id>.enc` in the package
storage (dsrflow/infra/storage.py), encrypted in chunks like packages (dsrflow/crypto/filecrypt.py)
under a key of their own, bound to the upload's id. Clear text exists only in memory, while a file
is checked or copied into a package."""

from __future__ import annotations

from collections.abc import Iterator

from dsrflow.crypto.filecrypt import EncryptedWriter, decrypt_chunks, file_key
from dsrflow.infra.storage import BlobStore, BlobWriter

FILE_PURPOSE = "dsrflow-processor-exports"


def upload_key(upload_id: str) -> str:
    return f"uploads/{upload_id}.enc"


def export_writer(store: BlobStore, secret: bytes, upload_id: str) -> tuple[EncryptedWriter, BlobWriter]:
    """A writer for an upload still being received: nothing is stored under its key until the
    caller commits the second (in api/callbacks/processor_uploads.py, before the row naming it)."""
    blob = store.writer(upload_key(upload_id))
    return EncryptedWriter(blob, file_key(secret, FILE_PURPOSE), upload_id), blob


def read_export(store: BlobStore, stored: str, secret: bytes, upload_id: str) -> Iterator[bytes]:
    """The upload's clear bytes, chunk by chunk; `stored` is its row's `path`. Blocking: call it
    from a thread (the package is zipped in one)."""
    return decrypt_chunks(store.blocks(stored), file_key(secret, FILE_PURPOSE), upload_id)
