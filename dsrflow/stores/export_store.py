"""Where processors' uploaded exports live: one file per upload under `$DSRFLOW_HOME/uploads`,
encrypted in chunks like packages (dsrflow/crypto/filecrypt.py) under a key of their own, bound to the
upload's id. Clear text exists only in memory, while a file is checked or copied into a package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dsrflow.crypto.filecrypt import EncryptedWriter, decrypt_chunks, file_key

FILE_PURPOSE = "dsrflow-processor-exports"


def uploads_dir(home: Path) -> Path:
    directory = home.resolve() / "uploads"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def export_writer(home: Path, secret: bytes, upload_id: str) -> tuple[EncryptedWriter, Path]:
    """A writer for an upload still being received: `<id>.part` until the caller keeps it (renamed
    to `<id>.enc` in the transaction that records it)."""
    path = uploads_dir(home) / f"{upload_id}.part"
    return EncryptedWriter(path, file_key(secret, FILE_PURPOSE), upload_id), path


def read_export(path: Path, secret: bytes, upload_id: str) -> Iterator[bytes]:
    return decrypt_chunks(path, file_key(secret, FILE_PURPOSE), upload_id)
