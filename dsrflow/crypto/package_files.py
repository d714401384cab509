"""Access packages at rest: one object per package, `packages/<id>.zip.enc` in the package storage
(dsrflow/infra/storage.py: under `$DSRFLOW_HOME` or in a bucket), encrypted in chunks
(dsrflow/crypto/filecrypt.py) under the packages' own key, bound to the package's id. The worker
writes them (activities/packages.py); the API streams them to a subject or to compliance."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from dsrflow.crypto.filecrypt import EncryptedWriter, Sink, decrypt_chunks, file_key

FILE_PURPOSE = "dsrflow-packages"


def package_key(package_id: str) -> str:
    return f"packages/{package_id}.zip.enc"


def package_writer(out: Sink, secret: bytes, package_id: str) -> EncryptedWriter:
    return EncryptedWriter(out, file_key(secret, FILE_PURPOSE), package_id)


def read_package(blocks: Iterable[bytes], secret: bytes, package_id: str) -> Iterator[bytes]:
    """The package's zip, chunk by chunk, from its stored blocks (`BlobStore.blocks`)."""
    return decrypt_chunks(blocks, file_key(secret, FILE_PURPOSE), package_id)
