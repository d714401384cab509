"""A processor's export, uploaded on its signed link's page (an access or portability request to a
processor without an API; the page is api/callbacks/manual_confirm.py).

The body is parsed as it streams in (python-multipart's parser, not a form spooled to a temporary
file): each file's bytes are checked (api/callbacks/export_files.py), hashed and encrypted straight into
a writer of the package storage (dsrflow/infra/storage.py), so its clear text is never stored. A
file over the policy's size limit or the body over the total stops the upload at once (413); a file
of a refused kind, or no file at all, is 422 naming it.

This route is the one the ASGI body cap leaves alone (api/body_limits.py), so it caps everything it
is sent itself, as it streams in, declared length or not (chunked): every byte of the body counts
against `body_limit` (the policy's total for files, plus FORM_ALLOWANCE for the form around them),
the small fields are at most MAX_FIELDS parts of _FIELD_MAX bytes and _FIELDS_MAX together, and a
part's headers at most _HEADERS_MAX; past any of them the answer is 413 naming the limit, and the
rest of the body is not read. A refusal says why in the words of the catalogs (`Said`), its page
being read in the staff language (api/callbacks/processor_pages.py). Only when every file passed are they stored
whole, then recorded with their digest, size and kind, and the task confirmed, in one transaction:
a refused or broken upload leaves nothing behind. A task already answered takes no more files (409).
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from asyncpg.transaction import Transaction
from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:  # the library declares its callback types for type checkers only
    from python_multipart.multipart import MultipartCallbacks

from api.callbacks.export_files import (
    KIND_OF_EXTENSION,
    MEDIA_TYPES,
    ContentCheck,
    RefusedFile,
    Said,
    kind_for,
    safe_name,
)
from api.callbacks.link_answers import limits_of, plain_note, record_answer, refuse_if_closed
from api.callbacks.link_refusals import UploadRefused
from dsrflow.crypto.filecrypt import EncryptedWriter
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.storage import BlobStore, BlobWriter
from dsrflow.settings import Settings
from dsrflow.stores.export_store import export_writer
from policy.exports import ProcessorExports

MAX_FILES = 100
# The page's form has the note, the "no data" box and (left empty) the file input: anything beyond
# a few such parts is not a browser sending our form.
MAX_FIELDS = 10
_FIELD_MAX = 16 * 1024  # the note and the "no data" box; anything longer is not a form field of ours
_FIELDS_MAX = 32 * 1024  # every field together
_HEADERS_MAX = 8 * 1024  # one part's headers (its name, file name and type)
# What the form around the files may add to the policy's total: boundaries, headers, the fields.
FORM_ALLOWANCE = 1024 * 1024
FILE_FIELD = "files"


def body_limit(limits: ProcessorExports) -> int:
    """Bytes an upload's whole body may have: the files' total and the form around them."""
    return limits.max_total_bytes + FORM_ALLOWANCE


def _too_large(limits: ProcessorExports) -> RefusedFile:
    return RefusedFile(lambda t: t.gettext("The upload is larger than the limit of %(total_mb)d MB of files (and "
                                           "%(form_mb)d MB for the form around them)")
                       % {"total_mb": limits.max_total_mb, "form_mb": FORM_ALLOWANCE // (1024 * 1024)}, status=413)


@dataclass
class _Incoming:
    upload_id: str
    filename: str
    check: ContentCheck
    writer: EncryptedWriter
    blob: BlobWriter
    media_type: str = ""


@dataclass
class ReceivedExport:
    store: BlobStore
    files: list[_Incoming] = field(default_factory=list)
    fields: dict[str, bytearray] = field(default_factory=dict)

    @property
    def note(self) -> str | None:
        return plain_note(bytes(self.fields.get("note", b"")).decode("utf-8", "replace"))

    @property
    def no_data(self) -> bool:
        return bool(self.fields.get("no_data"))

    def discard(self) -> None:
        """Forget the files not stored yet."""
        for incoming in self.files:
            incoming.writer.close()
            incoming.blob.discard()

    async def remove(self) -> None:
        """Forget every file, stored already or not (the upload is not kept)."""
        self.discard()
        for incoming in self.files:
            # One the store fails to delete has no row: the purge sweeps it (dsrflow/stores/kept_copies.py).
            with contextlib.suppress(Exception):
                await self.store.delete(incoming.blob.key)


class _Parser:
    """python-multipart callbacks: every file part streams through its check into its encrypted
    file; the small fields are collected. Any refusal is raised out of `parser.write`."""

    def __init__(self, secret: bytes, limits: ProcessorExports, into: ReceivedExport) -> None:
        self.secret, self.limits, self.into = secret, limits, into
        self.total = 0  # bytes of files
        self.fields = 0  # parts that are not files, and their bytes
        self.field_bytes = 0
        self._header_bytes = 0  # of the current part
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._file: _Incoming | None = None
        self._field: bytearray | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {"on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished}

    def on_part_begin(self) -> None:
        self._disposition, self._file, self._field = b"", None, None
        self._header_bytes = 0

    def _count_header(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > _HEADERS_MAX:
            raise RefusedFile(lambda t: t.gettext("A part of the form has headers longer than %(kb)d KB")
                              % {"kb": _HEADERS_MAX // 1024}, status=413)

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        raw_name = options.get(b"filename", b"").decode("utf-8", "replace")
        if not raw_name:  # a field, or a file input left empty (browsers still send the part)
            self.fields += 1
            if self.fields > MAX_FIELDS:
                raise RefusedFile(lambda t: t.gettext("The form has more than %(count)d fields besides its files: "
                                                      "send only the files, the note and the box")
                                  % {"count": MAX_FIELDS}, status=413)
        if b"filename" not in options:
            self._field = self.into.fields.setdefault(name, bytearray())
            return
        if name != FILE_FIELD:
            raise RefusedFile(lambda t: t.gettext("Unexpected file field %(name)s: send the files as %(field)s")
                              % {"name": repr(name), "field": repr(FILE_FIELD)})
        if not raw_name:
            return
        if len(self.into.files) >= MAX_FILES:
            raise RefusedFile(lambda t: t.gettext("At most %(count)d files can be sent at once: put them in a ZIP "
                                                  "archive") % {"count": MAX_FILES})
        filename = self._unique(safe_name(raw_name))
        check = ContentCheck(filename, kind_for(filename, self.limits.kinds), self.limits.max_file_bytes,
                             tuple(self.limits.kinds))
        upload_id = str(uuid.uuid4())
        writer, blob = export_writer(self.into.store, self.secret, upload_id)
        self._file = _Incoming(upload_id, filename, check, writer, blob)
        self.into.files.append(self._file)

    def _unique(self, name: str) -> str:
        taken = {f.filename for f in self.into.files}
        stem, dot, ext = name.rpartition(".")
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{stem} ({n}).{ext}" if dot else f"{name} ({n})"
        return candidate

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is not None:
            self.total += len(chunk)
            if self.total > self.limits.max_total_bytes:
                raise RefusedFile(lambda t: t.gettext("The files together are larger than the limit of %(mb)d MB")
                                  % {"mb": self.limits.max_total_mb}, status=413)
            self._file.check.feed(chunk)
            self._file.writer.write(chunk)
        elif self._field is not None:
            if len(self._field) + len(chunk) > _FIELD_MAX:
                raise RefusedFile(lambda t: t.gettext("A form field is longer than %(kb)d KB")
                                  % {"kb": _FIELD_MAX // 1024}, status=413)
            self.field_bytes += len(chunk)
            if self.field_bytes > _FIELDS_MAX:
                raise RefusedFile(lambda t: t.gettext("The form fields are longer than %(kb)d KB together")
                                  % {"kb": _FIELDS_MAX // 1024}, status=413)
            self._field += chunk

    def on_part_end(self) -> None:
        if self._file is not None:
            self._file.media_type = self._file.check.finish()
            self._file.writer.close()
        self._file, self._field = None, None


async def receive_export(request: Request, settings: Settings, store: BlobStore,
                         task: dict[str, Any]) -> ReceivedExport:
    """Stream the upload into encrypted files; raise UploadRefused (nothing kept) if any of it
    cannot be taken."""
    limits = limits_of(task)
    refuse_if_closed(task, limits)
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise UploadRefused(422, lambda t: t.gettext("Send the files as a form upload (multipart/form-data)."))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_limit(limits):
        raise UploadRefused(413, _sentence(_too_large(limits).said))
    received = ReceivedExport(store)
    parser = _Parser(load_secret_key(settings), limits, received)
    size = 0
    try:
        multipart = MultipartParser(params[b"boundary"], parser.callbacks())
        # Counted here, whatever was declared: a chunked body declares nothing, and bytes the
        # parser skips (before the first boundary, after the last) count as much as a file's.
        async for chunk in request.stream():
            size += len(chunk)
            if size > body_limit(limits):
                raise _too_large(limits)
            multipart.write(chunk)
        multipart.finalize()
        if not received.files and not received.no_data:
            raise RefusedFile(lambda t: t.gettext("Choose at least one file to send, or tick the box saying you "
                                                  "hold no data about this person"))
        if received.files and received.no_data:
            raise RefusedFile(lambda t: t.gettext("You sent files and also ticked the box saying you hold no data: "
                                                  "untick the box, or send no files"))
    except RefusedFile as refused:
        received.discard()
        raise UploadRefused(refused.status, _sentence(refused.said)) from None
    except FormParserError:
        received.discard()
        raise UploadRefused(422, lambda t: t.gettext("The upload could not be read as a form "
                                                     "(multipart/form-data).")) from None
    except Exception:
        received.discard()
        raise
    return received


def _sentence(said: Said) -> Said:
    """A refusal's words as a sentence of the page: ending in a full stop."""
    return lambda t: said(t).rstrip(".") + "."


async def keep_export(pool: Any, task: dict[str, Any], external_id: str, received: ReceivedExport) -> bool:
    """Keep the files, record them and confirm the task, all or nothing; False if the task was
    answered, settled or its request closed meanwhile (the files are then discarded). Each file is
    stored whole before a row names it: a crash in between leaves an object no row names, which
    the purge sweeps. Once the COMMIT has gone, its rows may stand though its answer never came
    (the connection died on the way back): the files then stay, since removing them would leave
    rows naming nothing and a package that could never be built; if the rows did not commit,
    the daily sweep of objects no row names removes them (dsrflow/stores/kept_copies.py)."""
    request_id, system = str(task["request_id"]), task["system"]
    committing = False
    try:
        for incoming in received.files:
            await incoming.blob.commit()
        failpoint("export-stored", system)  # the files stored whole, no row names them yet
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                confirmed = await record_answer(conn, external_id, received.note)
                if confirmed is None:
                    await transaction.rollback()
                    await received.remove()
                    return False
                for incoming in received.files:
                    await conn.execute(
                        """INSERT INTO processor_exports (id, request_id, system, external_id, filename,
                                                          media_type, size_bytes, sha256, path)
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
                        incoming.upload_id, task["request_id"], system, external_id, incoming.filename,
                        incoming.media_type, incoming.check.size, incoming.check.digest.hexdigest(),
                        incoming.blob.key)
                # Names and the note stay in the tables above, never in the append-only trail.
                await append_event(
                    conn, event_key=f"{request_id}:manual-export:{system}", request_id=request_id,
                    event_type="processor.export_received", actor=f"processor:{system}",
                    data={"system": system, "files": len(received.files),
                          "bytes": sum(f.check.size for f in received.files), "no_data": received.no_data,
                          "types": sorted({f.media_type for f in received.files}),
                          "note": received.note is not None},
                )
            except BaseException:
                await transaction.rollback()
                raise
            committing = True
            await commit_export(transaction)
    except BaseException:
        if not committing:
            await received.remove()
        raise
    return True


async def commit_export(transaction: Transaction) -> None:
    """The upload's COMMIT, on its own: where tests/test_processor_exports.py loses its answer."""
    await transaction.commit()


def accepted_types(limits: ProcessorExports) -> str:
    """For the page's file input: the extensions and media types we take."""
    return ",".join([e for e, k in KIND_OF_EXTENSION.items() if k in limits.kinds]
                    + [MEDIA_TYPES[k] for k in limits.kinds])
