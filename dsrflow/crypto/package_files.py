"""Where access packages live: one file per package under `$DSRFLOW_HOME/packages`, encrypted in
chunks (dsrflow/crypto/filecrypt.py) under the packages' own key, bound to the package's id. The
worker writes them (activities/packages.py); the API streams them to a subject or to compliance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dsrflow.crypto.filecrypt import EncryptedWriter, decrypt_chunks, file_key

FILE_PURPOSE = "dsrflow-packages"


def package_path(home: Path, package_id: str) -> Path:
    directory = home.resolve() / "packages"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory / f"{package_id}.zip.enc"


def package_writer(path: Path, secret: bytes, package_id: str) -> EncryptedWriter:
    return EncryptedWriter(path, file_key(secret, FILE_PURPOSE), package_id)


def read_package(home: Path, secret: bytes, package_id: str) -> Iterator[bytes]:
    path = home.resolve() / "packages" / f"{package_id}.zip.enc"
    return decrypt_chunks(path, file_key(secret, FILE_PURPOSE), package_id)
