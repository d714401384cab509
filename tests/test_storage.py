"""The package storage's contract (dsrflow/infra/storage.py), on both back ends: the local directory
and an S3 bucket (moto's server over loopback). Objects appear whole or not at all, read back in
bounded blocks, hold only sealed bytes, go when deleted, and the purge sweeps those no row names."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.exceptions import InvalidTag

from dsrflow.crypto.keys import load_secret_key
from dsrflow.crypto.package_files import package_key, package_writer, read_package
from dsrflow.infra.storage import PART_SIZE, BlobStore, LocalStore, open_storage, stored_key
from dsrflow.stores.export_store import export_writer, read_export, upload_key
from dsrflow.stores.kept_copies import sweep_orphans
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from tests.fanout_stack import loopback_socket, serve
from tests.s3_support import pending_uploads, s3_settings, stored

MARKER = b"clear-marker-5d1c: ada@example.com"


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, settings, s3_endpoint) -> BlobStore:
    if request.param == "local":
        return LocalStore(tmp_path)
    return open_storage(s3_settings(settings, s3_endpoint))


async def _put(store: BlobStore, key: str, data: bytes) -> int:
    blob = store.writer(key)
    for i in range(0, len(data), 100_000):
        blob.write(data[i:i + 100_000])
    blob.close()
    return await blob.commit()


async def _read(store: BlobStore, key: str) -> list[bytes]:
    return await asyncio.to_thread(lambda: list(store.blocks(key)))


async def _keys(store: BlobStore, folder: str) -> set[str]:
    return {found.key async for found in store.listing(folder)}


async def test_an_object_exists_only_once_committed_and_reads_back(store: BlobStore) -> None:
    key = package_key(str(uuid.uuid4()))
    blob = store.writer(key)
    blob.write(b"sealed bytes")
    blob.close()
    assert await store.size(key) is None and key not in await _keys(store, "packages")
    assert await blob.commit() == len(b"sealed bytes")
    blob.discard()  # after a commit, a no-op
    assert await store.size(key) == len(b"sealed bytes")
    assert b"".join(await _read(store, key)) == b"sealed bytes"
    listed = {found.key: found async for found in store.listing("packages")}
    assert listed[key].size == len(b"sealed bytes")
    assert abs(listed[key].modified - datetime.now(UTC)) < timedelta(minutes=5)

    await store.delete(key)
    assert await store.size(key) is None and key not in await _keys(store, "packages")
    await store.delete(key)  # gone already: not an error


async def test_a_discarded_writer_leaves_nothing(store: BlobStore) -> None:
    key = upload_key(str(uuid.uuid4()))
    blob = store.writer(key)
    blob.write(os.urandom(1000))
    blob.discard()
    assert await store.size(key) is None
    assert await _keys(store, "uploads") == set()  # no `.part` file either


async def test_a_large_object_goes_up_in_parts_and_comes_back_in_bounded_blocks(store: BlobStore) -> None:
    data = os.urandom(2 * PART_SIZE + 12345)  # three parts of a multipart upload on S3
    key = package_key(str(uuid.uuid4()))
    assert await _put(store, key, data) == len(data)
    blocks = await _read(store, key)
    assert b"".join(blocks) == data
    assert len(blocks) > 3 and max(len(b) for b in blocks) < PART_SIZE


async def test_stored_bytes_are_sealed_and_open_only_as_the_same_file(store: BlobStore) -> None:
    secret = os.urandom(32)
    package_id, upload_id = str(uuid.uuid4()), str(uuid.uuid4())
    clear = MARKER * 2000 + os.urandom(300_000)
    blob = store.writer(package_key(package_id))
    writer = package_writer(blob, secret, package_id)
    writer.write(clear)
    writer.close()
    await blob.commit()
    writer, upload = export_writer(store, secret, upload_id)
    writer.write(MARKER)
    writer.close()
    await upload.commit()

    for key in (package_key(package_id), upload_key(upload_id)):
        assert MARKER[:16] not in b"".join(await _read(store, key))
    opened = await asyncio.to_thread(lambda: b"".join(read_package(store.blocks(package_key(package_id)),
                                                                   secret, package_id)))
    assert opened == clear
    assert await asyncio.to_thread(lambda: b"".join(read_export(store, upload_key(upload_id), secret,
                                                                upload_id))) == MARKER
    with pytest.raises(InvalidTag):  # the same bytes presented as another package's
        await asyncio.to_thread(lambda: b"".join(read_package(store.blocks(package_key(package_id)),
                                                              secret, str(uuid.uuid4()))))


async def test_rows_from_before_storage_keys_name_their_objects_by_path(store: BlobStore) -> None:
    """Rows written before package storage hold `$DSRFLOW_HOME/packages/<id>.zip.enc`: the same
    key, in either back end (moving to S3 is copying the two folders into the bucket)."""
    key = package_key(str(uuid.uuid4()))
    await _put(store, key, b"old package")
    legacy = f"/var/lib/dsrflow/{key}"
    assert stored_key(legacy) == key
    assert b"".join(await _read(store, legacy)) == b"old package" and await store.size(legacy) == 11
    await store.delete(legacy)
    assert await store.size(key) is None


@pytest.mark.parametrize("bad", ["../packages/x", "packages/../../etc/passwd", "packages/..", "keys",
                                 "secret/x", "packages\\x", "packages/a/b", "/etc/passwd"])
def test_only_package_and_upload_keys_are_accepted(bad: str) -> None:
    with pytest.raises(ValueError, match="not a package storage key"):
        stored_key(bad)


async def test_the_purge_sweeps_objects_no_row_names_once_a_day_old(store: BlobStore, pool, settings) -> None:
    """A crash between an object and its row leaves an object nobody remembers: it goes once it is
    older than any upload or build still in flight. Recorded objects stay; purged rows' go."""
    row, _ = await create_request(pool, NewRequest(type="access", subject={"email": "sweep@example.com"},
                                                   identity_attested=True),
                                  loaded_policy=load_policy(settings.policy_path), secret=load_secret_key(settings), actor="test", idempotency_key=None)
    recorded, purged = str(uuid.uuid4()), str(uuid.uuid4())
    for package_id, purged_at in ((recorded, None), (purged, datetime.now(UTC))):
        await pool.execute(
            """INSERT INTO packages (id, request_id, kind, path, size_bytes, records, purged_at)
               VALUES ($1, $2, 'access', $3, 4, 0, $4)""", package_id, row["id"], package_key(package_id), purged_at)
    orphans = {package_key(purged), package_key(str(uuid.uuid4())), upload_key(str(uuid.uuid4())),
               "uploads/interrupted.enc.part"}
    for key in orphans | {package_key(recorded)}:
        await _put(store, key, b"sealed")

    assert await sweep_orphans(pool, store, datetime.now(UTC)) == 0  # all younger than a day
    later = datetime.now(UTC) + timedelta(days=1, minutes=1)
    assert await sweep_orphans(pool, store, later, dry_run=True) == len(orphans)
    assert await _keys(store, "packages") | await _keys(store, "uploads") == orphans | {package_key(recorded)}
    assert await sweep_orphans(pool, store, later) == len(orphans)
    assert await _keys(store, "packages") | await _keys(store, "uploads") == {package_key(recorded)}


# S3 only: what the bucket holds when the store fails half way --------------------------------


class _FailingPart:
    """A loopback proxy in front of moto that refuses the second part of any multipart upload,
    as a store out of space or a broken connection would."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refused = 0

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope["query_string"].decode()
        if "partNumber=2&" in query + "&":
            self.refused += 1
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/xml")]})
            await send({"type": "http.response.body",
                        "body": b"<Error><Code>EntityTooLarge</Code><Message>refused</Message></Error>"})
            return
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.lower() != b"host"]
        async with httpx.AsyncClient() as client:
            answer = await client.request(
                scope["method"], f"{self.upstream}{scope['path']}" + (f"?{query}" if query else ""),
                content=body, headers=[*headers, ("host", httpx.URL(self.upstream).netloc.decode())])
        await send({"type": "http.response.start", "status": answer.status_code, "headers": [
            (k.encode(), v.encode()) for k, v in answer.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")]})
        await send({"type": "http.response.body", "body": answer.content})


@pytest.fixture
async def failing_store(settings, s3_endpoint) -> AsyncIterator[tuple[BlobStore, _FailingPart, str]]:
    proxy, (sock, port) = _FailingPart(s3_endpoint), loopback_socket()
    server, task = await serve(proxy, sock)
    chosen = s3_settings(settings, f"http://127.0.0.1:{port}")
    try:
        yield open_storage(chosen), proxy, chosen.s3_prefix
    finally:
        server.should_exit = True
        await task


async def test_an_upload_the_store_fails_half_way_leaves_no_object_and_no_parts(failing_store, s3_endpoint) -> None:
    store, proxy, prefix = failing_store
    key = package_key(str(uuid.uuid4()))
    with pytest.raises(Exception, match="refused|400"):
        await _put(store, key, os.urandom(2 * PART_SIZE + 1))
    assert proxy.refused >= 1
    assert stored(s3_endpoint, prefix) == {}
    assert pending_uploads(s3_endpoint, prefix) == []  # the multipart upload was aborted
    assert await _put(store, package_key(str(uuid.uuid4())), b"small: one PUT, no parts") == 24
