"""Package storage: where access packages and processors' uploads are kept, behind one small
interface, so that a package a worker built on one host can be downloaded through an API on another.

- `local` (`DSRFLOW_STORAGE=local`, the default, `make run`): files under `$DSRFLOW_HOME`, one host.
- `s3`: objects in an S3-compatible bucket (AWS S3, MinIO, ...) under `DSRFLOW_S3_PREFIX`, reached
  by every api and worker.

Keys are the same relative paths in both (`packages/<id>.zip.enc`, `uploads/<id>.enc`), so moving
from one back end to the other is a copy of those two folders. Rows written before keys existed hold
the file's absolute path under `$DSRFLOW_HOME`: such a value reads as the key made of its last two
parts (`stored_key`), in either back end, so old rows need no migration.

Storage never sees clear data: what is written was sealed by dsrflow/crypto/filecrypt.py, and what
is read is opened there. A writer publishes nothing until it is committed, and a key holds a whole
object or nothing: the local back end writes `<key>.part` and renames it; the S3 back end spools the
sealed bytes to an anonymous temporary file and uploads it on commit, in one PUT or as a multipart
upload of PART_SIZE parts that obstore aborts when a part fails. Callers record a key in Postgres
only once it is committed, so a crash in between leaves at most an object that no row names, which
the purge sweeps (dsrflow/stores/kept_copies.py). Memory stays flat: sealed bytes go to disk as
they come and up part by part; reads come in blocks.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Protocol

from dsrflow.settings import Settings

if TYPE_CHECKING:
    from obstore.store import S3Config, S3Store

FOLDERS = ("packages", "uploads")
BLOCK = 256 * 1024  # a read hands on at least this much at a time (the last block excepted)
# S3's smallest part. With UPLOAD_CONCURRENCY parts in flight, an upload holds about 10 MB, which
# keeps a worker building a package within B4's memory target (BENCHMARKS.md).
PART_SIZE = 5 * 1024 * 1024
UPLOAD_CONCURRENCY = 2


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime


class BlobWriter(Protocol):
    """Sealed bytes on their way to `key` (a filecrypt.EncryptedWriter writes into it)."""

    key: str

    def write(self, data: bytes, /) -> int: ...

    def close(self) -> None:
        """No more bytes; nothing is published yet."""

    async def commit(self) -> int:
        """Publish the object under its key, whole; returns its size in bytes."""

    def discard(self) -> None:
        """Forget what was written (a no-op once committed)."""


class BlobStore(Protocol):
    """Where sealed packages and uploads are kept. `stored` is a key or a row's legacy path."""

    def writer(self, key: str) -> BlobWriter: ...

    def blocks(self, stored: str) -> Iterator[bytes]:
        """The object's bytes, block by block. Blocking: iterate it in a thread (the API's
        StreamingResponse does; the package is zipped in one)."""

    async def size(self, stored: str) -> int | None:
        """The object's size, None when there is none under the key."""

    async def delete(self, stored: str) -> None:
        """Delete the object; deleting one that is not there is not an error."""

    def listing(self, folder: str) -> AsyncIterator[StoredObject]:
        """Every object in one of FOLDERS, unfinished local `.part` files included."""


def stored_key(stored: str) -> str:
    """The key of a value of `packages.path` or `processor_exports.path`: a key, or an absolute path
    under `$DSRFLOW_HOME` (rows from before storage keys), whose last two parts are the key."""
    path = PurePosixPath(stored)
    if path.is_absolute():
        path = PurePosixPath(*path.parts[-2:])
    if len(path.parts) != 2 or path.parts[0] not in FOLDERS or path.parts[1] in (".", "..") or "\\" in stored:
        raise ValueError(f"not a package storage key: {stored!r}")
    return str(path)


class _SpoolWriter:
    """Sealed bytes into a local file until committed; what a commit does is the back end's."""

    def __init__(self, key: str, file: IO[bytes]) -> None:
        self.key = key
        self._file = file
        self._size = 0

    def write(self, data: bytes, /) -> int:
        self._file.write(data)
        self._size += len(data)
        return len(data)

    def close(self) -> None:
        self._file.flush()

    def discard(self) -> None:
        self._file.close()


class _LocalWriter(_SpoolWriter):
    def __init__(self, key: str, path: Path) -> None:
        self._path = path
        self._part = path.with_name(path.name + ".part")
        super().__init__(key, open(self._part, "wb"))  # noqa: SIM115 - closed by commit or discard

    def _publish(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())  # the rename must not publish a file whose bytes are not on disk
        self._file.close()
        os.replace(self._part, self._path)

    async def commit(self) -> int:
        await asyncio.to_thread(self._publish)
        return self._size

    def discard(self) -> None:
        super().discard()
        self._part.unlink(missing_ok=True)


class LocalStore:
    """Files under `root` (`$DSRFLOW_HOME`): one host, or a file system every host mounts."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, stored: str) -> Path:
        return self.root / stored_key(stored)

    def writer(self, key: str) -> BlobWriter:
        key = stored_key(key)
        (self.root / key).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return _LocalWriter(key, self.root / key)

    def blocks(self, stored: str) -> Iterator[bytes]:
        with open(self._path(stored), "rb") as handle:
            while block := handle.read(BLOCK):
                yield block

    async def size(self, stored: str) -> int | None:
        try:
            return self._path(stored).stat().st_size
        except FileNotFoundError:
            return None

    async def delete(self, stored: str) -> None:
        self._path(stored).unlink(missing_ok=True)

    async def listing(self, folder: str) -> AsyncIterator[StoredObject]:
        def scan() -> list[StoredObject]:
            found: list[StoredObject] = []
            directory = self.root / folder
            for entry in os.scandir(directory) if directory.is_dir() else []:
                try:
                    stat = entry.stat()
                except FileNotFoundError:  # a `.part` renamed meanwhile
                    continue
                found.append(StoredObject(f"{folder}/{entry.name}", stat.st_size,
                                          datetime.fromtimestamp(stat.st_mtime, UTC)))
            return found

        for found in await asyncio.to_thread(scan):
            yield found


class _S3Writer(_SpoolWriter):
    def __init__(self, key: str, bucket: S3Store) -> None:
        # Anonymous: the kernel frees it when the process dies, so a crash leaves no spool behind.
        super().__init__(key, tempfile.TemporaryFile())
        self._bucket = bucket

    async def commit(self) -> int:
        import obstore

        self._file.flush()
        self._file.seek(0)
        try:
            # Above PART_SIZE obstore uploads in parts and aborts the upload if one fails: the
            # key then holds nothing, not half an object.
            await obstore.put_async(self._bucket, self.key, self._file, chunk_size=PART_SIZE,
                                    max_concurrency=UPLOAD_CONCURRENCY)
        finally:
            self._file.close()
        return self._size


class S3BlobStore:
    """Objects in an S3-compatible bucket, under the store's prefix (obstore does the HTTP)."""

    def __init__(self, bucket: S3Store) -> None:
        self.bucket = bucket

    def writer(self, key: str) -> BlobWriter:
        return _S3Writer(stored_key(key), self.bucket)

    def blocks(self, stored: str) -> Iterator[bytes]:
        import obstore

        yield from obstore.get(self.bucket, stored_key(stored)).stream(min_chunk_size=BLOCK)

    async def size(self, stored: str) -> int | None:
        import obstore

        try:
            return (await obstore.head_async(self.bucket, stored_key(stored)))["size"]
        except FileNotFoundError:
            return None

    async def delete(self, stored: str) -> None:
        import obstore

        await obstore.delete_async(self.bucket, stored_key(stored))

    async def listing(self, folder: str) -> AsyncIterator[StoredObject]:
        import obstore

        async for batch in obstore.list(self.bucket, prefix=f"{folder}/", chunk_size=1000):
            for meta in batch:
                yield StoredObject(meta["path"], meta["size"], meta["last_modified"])


def s3_bucket(settings: Settings) -> S3Store:
    """The bucket of DSRFLOW_S3_*; credentials left unset come from the standard AWS variables."""
    # Imported here: a process on the local back end never loads obstore.
    from obstore.store import S3Store

    config: S3Config = {}
    if settings.s3_endpoint:
        config["endpoint"] = settings.s3_endpoint
    if settings.s3_region:
        config["region"] = settings.s3_region
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        config["access_key_id"] = settings.s3_access_key_id
        config["secret_access_key"] = settings.s3_secret_access_key
    # Plain http is allowed only where asked for by the endpoint's own scheme; production refuses
    # it beyond this host unless DSRFLOW_S3_ALLOW_HTTP says so (dsrflow/infra/production.py).
    allow_http = bool(settings.s3_endpoint and settings.s3_endpoint.startswith("http://"))
    return S3Store(settings.s3_bucket, prefix=settings.s3_prefix or None, config=config,
                   client_options={"allow_http": allow_http})


def open_storage(settings: Settings) -> BlobStore:
    """The back end DSRFLOW_STORAGE names."""
    if settings.storage == "s3":
        return S3BlobStore(s3_bucket(settings))
    return LocalStore(settings.home)
