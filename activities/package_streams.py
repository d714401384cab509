"""The files of an access package that a connector's `export` streams in (the `sql` connector's
COPYs): each deflated as its bytes arrive, as the zip will hold it, so that a million rows never
sit on disk in clear and compressing overlaps the reading instead of following it.

A part's two files fill at the same time (the JSON and the CSV COPYs run at once), which a zip
cannot take: it writes one entry after another. So each file is deflated apart, into a small
spool of its compressed bytes with the CRC and size the zip's headers need, and the package's zip
later takes those bytes as they are (`DeflatedFile.write_into`). Deflating runs in a thread, a
block at a time (zlib lets go of the GIL), while the event loop reads both connections.
"""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from typing import IO

from policy.disclosure import Origin
from schemas.plain_text import csv_cell

LEVEL = 1  # the package's zlib level (activities/packages.py): level 6 cost another second in B4
BLOCK = 1024 * 1024  # bytes gathered before a thread deflates them
SPOOL_IN_MEMORY = 256 * 1024  # a package's spools keep this much in memory; beyond it, spill to disk


class _Deflated:
    """zipfile's compressor interface for bytes that are deflated already: passes them on."""

    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class DeflatedFile:
    """One file of the zip, deflated (raw, as zipfile deflates an entry) as its bytes come."""

    def __init__(self, first: bytes = b"") -> None:
        self._deflate = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._spool: IO[bytes] = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY)
        self._blocks: list[bytes | memoryview] = []
        self._gathered = 0
        self._finished = False
        self.crc = 0
        self.size = 0
        self._deflate_now(first)

    def _deflate_now(self, data: bytes | memoryview) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        self._spool.write(self._deflate.compress(data))

    def _deflate_blocks(self, blocks: list[bytes | memoryview]) -> None:
        for block in blocks:
            self._deflate_now(block)

    async def write(self, *chunks: bytes | memoryview) -> None:
        """Gather the chunks; a full block is deflated in a thread before the next is taken, so
        memory holds about a block per file and a reader waits only while its own is deflated."""
        for chunk in chunks:
            self._blocks.append(chunk)
            self._gathered += len(chunk)
        if self._gathered >= BLOCK:
            blocks, self._blocks, self._gathered = self._blocks, [], 0
            await asyncio.to_thread(self._deflate_blocks, blocks)

    def finish(self, last: bytes = b"") -> None:
        """Deflate what is still gathered, then `last`, and end the stream (once)."""
        if self._finished:
            return
        self._finished = True
        self._deflate_blocks(self._blocks)
        self._blocks = []
        self._deflate_now(last)
        self._spool.write(self._deflate.flush())

    def clear_chunks(self) -> Iterator[bytes]:
        """The file's bytes as the zip will hold them, decompressed block by block."""
        self.finish()
        self._spool.seek(0)
        inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        while block := self._spool.read(SPOOL_IN_MEMORY):
            yield inflate.decompress(block)
        yield inflate.flush()

    def write_into(self, archive: zipfile.ZipFile, name: str) -> None:
        """The entry `name`, its compressed bytes copied as they are."""
        self.finish()
        info = zipfile.ZipInfo(name)  # dated as zipfile dates an entry opened by name
        info.compress_type = zipfile.ZIP_DEFLATED
        info.file_size = self.size  # zipfile decides on ZIP64 headers from it
        self._spool.seek(0)
        with archive.open(info, "w") as entry:
            # zipfile has no public way to take deflated bytes: its entry writer is given a
            # compressor that passes them on, and the CRC and size of the clear bytes, which it
            # then writes in the entry's headers. Reading the package back checks both.
            entry._compressor = _Deflated()  # type: ignore[attr-defined]  # noqa: SLF001
            shutil.copyfileobj(self._spool, entry, SPOOL_IN_MEMORY)
            entry._crc, entry._file_size = self.crc, self.size  # type: ignore[attr-defined]  # noqa: SLF001

    def close(self) -> None:
        self._spool.close()


def csv_header(columns: list[str]) -> bytes:
    """The CSV's first row, as the csv module writes it (a processor names its columns)."""
    text = io.StringIO(newline="")
    csv.writer(text).writerow([csv_cell(c) for c in columns])
    return text.getvalue().encode()


class CopiedPart:
    """One (system, dataset, category) that a connector's `export` writes (base.ExportPart): its
    JSON array, each line a record followed by a comma as the store writes it, and its CSV rows
    under the header, both deflated as they arrive."""

    def __init__(self, columns: list[str], origin_of: Mapping[str, Origin]) -> None:
        self.columns = columns
        self.origin_of = dict(origin_of)
        self.count = 0
        self._json = DeflatedFile(b"[\n")
        self._csv = DeflatedFile(csv_header(columns))
        self._tail = b""  # the last record's ",\n", held back: the array ends without a comma

    async def json_lines(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.count += chunk.count(b"\n")
        view = memoryview(chunk)
        await self._json.write(self._tail, view[:-2])
        self._tail = bytes(view[-2:])

    async def csv_rows(self, chunk: bytes) -> None:
        await self._csv.write(chunk)

    def _finish(self) -> None:
        self._json.finish(self._tail[:-2] + b"\n]\n")
        self._csv.finish()

    def json_records(self) -> Iterator[bytes]:
        """Each record's JSON (for the summary), read back from the deflated array."""
        self._finish()
        pending = b""
        for block in self._json.clear_chunks():
            *lines, pending = (pending + block).split(b"\n")
            yield from (line.removesuffix(b",") for line in lines if line not in (b"[", b"]"))

    def write_into(self, archive: zipfile.ZipFile, json_name: str, csv_name: str) -> None:
        self._finish()
        self._json.write_into(archive, json_name)
        self._csv.write_into(archive, csv_name)

    def close(self) -> None:
        self._json.close()
        self._csv.close()
