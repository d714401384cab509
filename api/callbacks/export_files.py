"""Which files a processor may send us as its export of a data subject's data, judged by their
content as they stream in (the extension only says what the content must be).

Accepted: JSON, CSV, PDF, plain text, and a ZIP of those; the policy's `processor_exports.kinds`
may narrow the list. Everything else is refused with a sentence saying why, because the files end
up in the subject's package and someone will open them: HTML and other markup (scripts), programs,
anything binary that is not a PDF. Nothing here touches the disk: the caller encrypts what it
stores (api/callbacks/processor_uploads.py).

A refusal says why in words of the catalogs (`Said`: a function of the reader's translator), since
its page is read in the staff language (api/callbacks/processor_pages.py); `message` is the English.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import stat
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from activities.connectors.bounded_http import NotJson, TooDeep, TooMany, json_bytes
from dsrflow.i18n import ENGLISH, N_, Translator

KIND_OF_EXTENSION = {".json": "json", ".csv": "csv", ".pdf": "pdf", ".txt": "text", ".zip": "zip"}
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv", "pdf": "application/pdf",
               "text": "text/plain", "zip": "application/zip"}
# Translators: what a refused file is not: "data.json: is not JSON: it holds binary data".
_DESCRIBED = {"json": N_("JSON"), "csv": N_("CSV"), "pdf": N_("a PDF"), "text": N_("plain text"),
              "zip": N_("a ZIP archive")}
_HEAD = 8 * 1024  # enough of the start of a file to recognise what it is
_PROGRAMS = (b"MZ", b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
             b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"#!", b"\x00asm")
_MARKUP = (b"<!doctype", b"<html", b"<head", b"<body", b"<script", b"<svg", b"<?xml", b"<iframe", b"<object")
# Control characters other than tab, line feed, carriage return and form feed do not occur in text.
# Every entry of a ZIP's central directory opens with this signature: counted in the whole archive,
# it bounds the entries zipfile would read (more only where a member's bytes hold it by chance).
_DIRECTORY_ENTRY = b"PK\x01\x02"
# The most files and folders an archive may hold: far more than one person's export. zipfile reads
# every entry of the directory into an object before anything can be checked, and each member was
# then opened and checked: 270,000 one-byte files in a 24 MB upload held the API's event loop for
# 8 seconds and took it 440 MB.
MAX_MEMBERS = 10_000
_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 12, 13)) + b"\x7f"


# Words said once the reader's language is known: the sentence through its translator.
Said = Callable[[Translator], str]


def _filled(message: Said, **values: object) -> Said:
    """`message` with its placeholders' values as they are now (a loop's, not its last ones)."""
    return lambda t: message(t) % values


class RefusedFile(ValueError):
    """A file we will not take, and why (`said`; `message` in English); `status` is the HTTP
    answer (413 too large, 422 anything else)."""

    def __init__(self, said: Said, status: int = 422) -> None:
        self.said = said
        self.message = said(ENGLISH)
        super().__init__(self.message)
        self.status = status


def safe_name(filename: str) -> str:
    """The file's own name without any folder (browsers may send a path), printable and short."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = "".join(ch if ch.isprintable() and ch not in '<>:"|?*' else "_" for ch in name)
    stem, dot, ext = name.rpartition(".")
    if dot and len(name) > 120:
        name = f"{stem[:110]}.{ext[:9]}"
    return name[:120].lstrip(".") or "file"


def kind_for(filename: str, kinds: Iterable[str]) -> str:
    allowed = [e for e, k in KIND_OF_EXTENSION.items() if k in set(kinds)]
    ext = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    kind = KIND_OF_EXTENSION.get(ext)
    if kind is None or kind not in set(kinds):
        raise RefusedFile(lambda t: t.gettext("%(file)s: only %(allowed)s files are accepted")
                          % {"file": filename, "allowed": ", ".join(allowed)})
    return kind


def _what_it_looks_like(head: bytes) -> str | None:
    """A name for content we refuse whatever the extension says (a message of the catalogs)."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(_PROGRAMS):
        return N_("an executable program or script")
    if start.startswith(_MARKUP) or b"<script" in head.lower():
        return N_("HTML or other markup")
    return None


@dataclass
class ContentCheck:
    """Fed a file's bytes in order; raises RefusedFile as soon as they cannot be the declared
    kind or pass the size limit, and says at `finish` whether the whole file is what it claims."""

    filename: str
    kind: str
    max_bytes: int
    kinds: tuple[str, ...] = ("json", "csv", "pdf", "text")
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    _head: bytearray = field(default_factory=bytearray)
    _checked_head: bool = False
    _decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8-sig")())
    _kept: bytearray = field(default_factory=bytearray)  # JSON and ZIP are checked whole at the end

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise RefusedFile(lambda t: t.gettext("%(file)s: larger than the limit of %(mb)d MB per file")
                              % {"file": self.filename, "mb": self.max_bytes // (1024 * 1024)}, status=413)
        self.digest.update(chunk)
        if not self._checked_head:
            self._head += chunk
            if len(self._head) >= _HEAD or _what_it_looks_like(bytes(self._head)):
                self._check_head(bytes(self._head))
        if self.kind in ("json", "csv", "text"):
            if any(c in chunk for c in _CONTROL):
                raise RefusedFile(self._binary)
            try:
                self._decoder.decode(chunk)
            except UnicodeDecodeError:
                raise RefusedFile(self._not_utf8) from None
        if self.kind in ("json", "zip"):
            self._kept += chunk

    def finish(self) -> str:
        """The file's media type, once every byte has been fed."""
        if not self._checked_head:
            self._check_head(bytes(self._head))
        if self.size == 0:
            raise RefusedFile(lambda t: t.gettext("%(file)s: the file is empty") % {"file": self.filename})
        if self.kind in ("json", "csv", "text"):
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise RefusedFile(self._not_utf8) from None
        if self.kind == "json":
            self._check_json(bytes(self._kept))
        if self.kind == "zip":
            self._check_archive(bytes(self._kept))
        return MEDIA_TYPES[self.kind]

    def _check_json(self, data: bytes) -> None:
        """Whether `data` is JSON, read as the processors' answers are (bounded_http): nested past
        JSON_DEPTH (Python's own decoder failed with a RecursionError past a few hundred levels, and
        the upload answered 500), holding more than one value for each 16 bytes of this file's
        limit, or strings with an emoji past a quarter of it, it is refused before a parser sees
        it. Parsed whole, JSON of tiny values takes 25 times its bytes: 25 MB of `[{},{},...]`
        took the API 640 MB, the same deflated a thousand to one into a ZIP's 100 MB member (of
        100 KB sent) 2.6 GB. At the bounds the worst is 2.6 times the limit (measured: 64 MB at
        the 25 MB of a file, 260 MB at the 100 MB a member may unpack to); an export of real
        records (9 to 20 bytes a value) up to half its limit always passes."""
        try:
            json_bytes(data, cap=self.max_bytes)
        except TooDeep:
            raise RefusedFile(lambda t: t.gettext("%(file)s: is not JSON we can read: it is nested too deeply")
                              % {"file": self.filename}) from None
        except TooMany as exc:
            reason = str(exc)  # bounded_http's words, in English, as the parser's are below
            raise RefusedFile(lambda t: t.gettext("%(file)s: is not JSON we can read: it holds far more than an "
                                                  "export does (%(reason)s); send it as CSV or in several files")
                              % {"file": self.filename, "reason": reason}, status=413) from None
        except NotJson:
            # Within the bounds, Python's decoder has the last word, as before: it takes what the
            # bounded parser does not (a lone half of a surrogate pair: the file is kept as it is
            # sent), and says where and what is wrong with the rest.
            try:
                json.loads(data.decode("utf-8-sig"))
            except ValueError as exc:
                error = exc.args[0].split(":")[0]  # the parser's own words, in English
                raise RefusedFile(lambda t: t.gettext("%(file)s: is not valid JSON (%(error)s)")
                                  % {"file": self.filename, "error": error}) from None

    def _binary(self, t: Translator) -> str:
        return t.gettext("%(file)s: is not %(kind)s: it holds binary data") % {
            "file": self.filename, "kind": t.gettext(_DESCRIBED[self.kind])}

    def _not_utf8(self, t: Translator) -> str:
        return t.gettext("%(file)s: is not %(kind)s in UTF-8") % {
            "file": self.filename, "kind": t.gettext(_DESCRIBED[self.kind])}

    def _check_head(self, head: bytes) -> None:
        self._checked_head = True
        looks_like = _what_it_looks_like(head)
        if looks_like:
            raise RefusedFile(lambda t: t.gettext("%(file)s: looks like %(what)s, which we do not accept")
                              % {"file": self.filename, "what": t.gettext(looks_like)})
        if self.kind == "pdf" and not head.startswith(b"%PDF-"):
            raise RefusedFile(lambda t: t.gettext("%(file)s: is not a PDF (it does not start like one)")
                              % {"file": self.filename})
        if self.kind == "zip" and not head.startswith(b"PK\x03\x04"):
            raise RefusedFile(lambda t: t.gettext("%(file)s: is not a ZIP archive (it does not start like one)")
                              % {"file": self.filename})
        if self.kind in ("json", "csv", "text") and head.startswith((b"%PDF-", b"PK\x03\x04")):
            raise RefusedFile(self._binary)
        if self.kind == "json" and head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] not in (b"{", b"["):
            raise RefusedFile(lambda t: t.gettext("%(file)s: is not JSON (it does not start with { or [)")
                              % {"file": self.filename})

    def _check_archive(self, data: bytes) -> None:
        """Every member must itself be an accepted file (no archive in the archive), readable
        without a password, and the whole must unpack within the size limit (no ZIP bomb)."""
        if data.count(_DIRECTORY_ENTRY) > MAX_MEMBERS:
            raise RefusedFile(lambda t: t.gettext("%(file)s: the ZIP archive holds more than %(count)d files and "
                                                  "folders: send fewer, larger files")
                              % {"file": self.filename, "count": MAX_MEMBERS}, status=413)
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            members = [m for m in archive.infolist() if not m.is_dir()]
        except zipfile.BadZipFile:
            raise RefusedFile(lambda t: t.gettext("%(file)s: is not a readable ZIP archive")
                              % {"file": self.filename}) from None
        seen: set[str] = set()
        for entry in archive.infolist():  # folders' entries too: unpacking creates them
            shown = "".join(ch if ch.isprintable() else "?" for ch in entry.filename)
            # Unpacked, a second member of a name replaces the first (on a case-insensitive disk,
            # of a name differing only in case too): what is read would not be all that was sent.
            if (folded := entry.filename.rstrip("/").casefold()) in seen:
                raise RefusedFile(_filled(lambda t: t.gettext(
                    "%(file)s: %(member)s: appears twice in the archive (names that differ only in case count as "
                    "one)"), file=self.filename, member=shown))
            seen.add(folded)
            if _unsafe_member_name(entry.filename):
                raise RefusedFile(_filled(lambda t: t.gettext(
                    "%(file)s: %(member)s: its name must be a relative path without a leading /, a drive letter, "
                    "'..', backslashes or control characters"), file=self.filename, member=shown))
            if stat.S_ISLNK(entry.external_attr >> 16):
                # unzip makes it a link (its content is the target), and a later member of the
                # same name is written through it: zip slip without a '..' in any name.
                raise RefusedFile(_filled(lambda t: t.gettext(
                    "%(file)s: %(member)s: is a symbolic link, which we do not accept"), file=self.filename,
                    member=shown))
        if not members:
            raise RefusedFile(lambda t: t.gettext("%(file)s: the ZIP archive holds no files") % {"file": self.filename})
        if sum(m.file_size for m in members) > self.max_bytes * 4:
            raise RefusedFile(lambda t: t.gettext("%(file)s: unpacks to more than %(mb)d MB")
                              % {"file": self.filename, "mb": 4 * self.max_bytes // (1024 * 1024)}, status=413)
        inner = tuple(k for k in self.kinds if k != "zip")
        for member in members:
            where = f"{self.filename}: {member.filename}"
            if member.flag_bits & 0x1:
                raise RefusedFile(_filled(lambda t: t.gettext("%(file)s: is protected by a password"), file=where))
            check = ContentCheck(where, _inner_kind(where, member.filename, inner), self.max_bytes * 4, inner)
            try:
                with archive.open(member) as stream:
                    while chunk := stream.read(64 * 1024):
                        check.feed(chunk)
            except (zipfile.BadZipFile, OSError, NotImplementedError) as exc:
                raise RefusedFile(_filled(lambda t: t.gettext("%(file)s: cannot be read (%(error)s)"), file=where,
                                          error=str(exc))) from None
            check.finish()


def _unsafe_member_name(name: str) -> bool:
    """Whether unpacking the archive would put the member outside the folder it unpacks into (zip
    slip: `../x`, `/etc/x`, `C:x`; a backslash is a folder on Windows) or show a name other than
    its own (control characters, and other unprintable ones such as the right-to-left override
    that makes `gpj.exe` look like `exe.jpg`). The archive reaches the subject's package as sent."""
    return (name.startswith("/") or name[1:2] == ":" or "\\" in name or ".." in name.split("/")
            or not name.isprintable())


def _inner_kind(where: str, member: str, kinds: tuple[str, ...]) -> str:
    try:
        return kind_for(member, kinds)
    except RefusedFile:
        allowed = ", ".join(e for e, k in KIND_OF_EXTENSION.items() if k in kinds)
        raise RefusedFile(lambda t: t.gettext("%(file)s: only %(allowed)s files are accepted inside a ZIP archive")
                          % {"file": where, "allowed": allowed}) from None
