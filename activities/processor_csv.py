"""A processor's uploaded CSV as the subject's package holds it: a cell a spreadsheet would run as
a formula (`=HYPERLINK(...)` leaks data, `=cmd|...` runs programs) gets a leading apostrophe, as in
the CSV files we write ourselves (schemas/plain_text.py `csv_cell`). Whoever holds a processor's
link could otherwise put one in front of the subject, or of compliance reviewing the package.

Only the records holding such a cell are written again; every other byte is the processor's, so a
file without one is exactly the file it sent (its size and SHA-256 in the summary still match).
The same for each CSV inside an uploaded ZIP archive. Bytes that are not UTF-8 pass through as
they are (`surrogateescape`).

A spreadsheet splits the file on its reader's list separator (a comma, or a semicolon in Belgium,
the Netherlands, France, Germany...), not on the one the first line uses: a record whose cells are
separated by another delimiter holds cells the first line's delimiter does not see. So a cell that
begins after any of `,` `;` tab `|` (or at a line's start) is neutralised as well.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import zipfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from schemas.plain_text import csv_cell

_DELIMITERS = ",;\t|"
# The csv module refuses a field over 128 KiB by default, and the package would then fail on every
# retry for one long cell (a notes column, a quote left open). An upload is capped far below this
# (policy `processor_exports`), so no field the reader meets is refused. Process-wide, and only
# ever raised.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
# Where a cell may begin with a formula for a reader splitting on some delimiter: after a line
# break or a delimiter (and perhaps a quote). Quotes are otherwise ignored: each delimiter's reader
# pairs them its own way, and a quote that opens a cell for one may close a cell, begun a record
# earlier, for another. A tab is a separator of the tab reader, which checks the cell after it,
# so it is not looked at as a formula character here: a tab-separated file's empty first cell
# stays as it is.
_FORMULA_START = re.compile(r'(?<![^,;\t|\r\n])"?(?=[=+\-@])')
_CELL_END = {d: re.compile(rf"[{re.escape(d)}\r\n]") for d in _DELIMITERS}


def write_csv(chunks: Iterable[bytes], out: IO[bytes]) -> None:
    """Copy the CSV in `chunks` to `out`, its formula cells neutralised."""
    text = io.TextIOWrapper(io.BufferedReader(_Chunks(chunks)), encoding="utf-8", errors="surrogateescape",
                            newline="")
    lines: Iterator[str] = iter(text)
    first = next(lines, "")  # the header, or the first record
    delimiter = _delimiter(first)
    consumed: list[str] = []

    def source() -> Iterator[str]:
        for line in itertools.chain([first] if first else [], lines):
            consumed.append(line)
            yield line

    # The reader takes a line at a time and reads no further than the record it returns, so
    # `consumed` holds exactly that record's text.
    for record in csv.reader(source(), delimiter=delimiter):
        raw = "".join(consumed)
        consumed.clear()
        cells = [csv_cell(cell) for cell in record]
        if cells != record:
            ending = "\r\n" if raw.endswith("\r\n") else "\n" if raw.endswith("\n") else ""
            buffer = io.StringIO()
            csv.writer(buffer, delimiter=delimiter, lineterminator=ending).writerow(cells)
            raw = buffer.getvalue()
        raw = _neutralise_other_splits(raw, delimiter)
        out.write(raw.encode("utf-8", errors="surrogateescape"))
    out.write("".join(consumed).encode("utf-8", errors="surrogateescape"))  # a text after the last record


def write_zip(chunks: Iterable[bytes], out: IO[bytes]) -> None:
    """Copy the ZIP archive in `chunks` to `out`, each CSV in it as `write_csv` copies one. Read in
    memory (uploads are a few MB at most: policy `processor_exports`), never in clear on disk."""
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in source.infolist():
            with source.open(info) as member, copy.open(info.filename, "w") as target:
                if info.filename.lower().endswith(".csv"):
                    write_csv(_blocks(member), target)
                else:
                    for block in _blocks(member):
                        target.write(block)


def _delimiter(first: str) -> str:
    """The delimiter that splits the first line into the most fields (quotes respected): a comma
    unless another does better. (csv.Sniffer guesses wrong on a few lines with commas in text.)"""
    fields = {d: len(next(csv.reader([first], delimiter=d), [])) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: (fields[d], d == ","))
    return best if fields[best] > 1 else ","


def _neutralise_other_splits(raw: str, delimiter: str) -> str:
    """The record's text with an apostrophe before each cell that a reader splitting on another
    delimiter than the file's would run as a formula; the text as it is when there is none."""
    starts = []
    for found in _FORMULA_START.finditer(raw):
        after = raw[found.start() - 1] if found.start() else ""
        for d in _DELIMITERS if after in ("", "\r", "\n") else after:  # a line starts a cell for every reader
            if d == delimiter:
                continue  # the csv reader has split the record on it
            end = _CELL_END[d].search(raw, found.end())
            cell = raw[found.end():end.start() if end else len(raw)].removesuffix('"')
            if csv_cell(cell) != cell:
                starts.append(found.end())
                break
    if not starts:
        return raw
    return "'".join(raw[a:b] for a, b in zip([0, *starts], [*starts, len(raw)], strict=True))


def _blocks(member: IO[bytes]) -> Iterator[bytes]:
    while block := member.read(1 << 16):
        yield block


class _Chunks(io.RawIOBase):
    """A readable stream over an iterable of byte chunks (the decrypted upload)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:  # any writable buffer io hands us
        while not self._left:
            self._left = next(self._chunks, b"")
            if not self._left:
                return 0
        n = min(len(buffer), len(self._left))
        memoryview(buffer).cast("B")[:n] = self._left[:n]
        self._left = self._left[n:]
        return n
