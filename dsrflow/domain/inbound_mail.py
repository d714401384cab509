"""Reading an e-mail that reached the privacy mailbox: its sender, subject, date, text and
attachments, from bytes anyone on the internet can write.

Nothing here trusts the message: a header that does not parse is read as plain text, an
encoded-word in a charset Python does not know is replaced rather than fatal, a part whose charset
lies is decoded with replacement characters, nesting is followed to a fixed depth, the text is cut
at a limit, and an attachment is kept only when its size and type are allowed (the refusal is
noted beside the message). Pure: no I/O, so the reader, the SMTP sink and the tests share it.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, Protocol

import html2text

from schemas.plain_text import DIRECTION_CONTROLS, one_line

# Headers kept with the message as evidence (transport headers such as Received are not).
EVIDENCE_HEADERS = ("From", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To",
                    "References")
MAX_DEPTH = 8  # multiparts inside multiparts: real mail nests three or four deep
MAX_PARTS = 200
_HEADER_CHARS = 998  # RFC 5322's line limit: longer is not a header anyone meant to read
# What the header parser is given: real headers are far shorter (a long References chain is a few
# KB), and its cost grows with the square of a header's length (bounded_headers).
HEADER_BYTES = 8192
HEADERS_BYTES = 65536
# A message's Date a little after it reached us is clock skew between machines, not the future.
CLOCK_SKEW = timedelta(minutes=5)
# Lone surrogates: UTF-7 (a charset Python knows) and its own unicode_escape codec decode to them,
# in an encoded-word or a part, and no page, database or hash can encode them.
_SURROGATES = re.compile("[\ud800-\udfff]")
# Something a reader takes for an address, in a display name.
_ADDRESS_LIKE = re.compile(r"[^\s<>()\"',;:@]+@[^\s<>()\"',;:@]+\.[^\s<>()\"',;:@]+")


class MailLimitsLike(Protocol):
    """The limits parse_message applies (policy/mailbox.py MailLimits)."""

    @property
    def message_bytes(self) -> int: ...
    @property
    def attachment_bytes(self) -> int: ...
    @property
    def attachments(self) -> int: ...
    @property
    def text_chars(self) -> int: ...


@dataclass
class Attachment:
    filename: str
    content_type: str
    size: int
    refused: str | None = None  # why it was not kept
    data: bytes | None = field(default=None, repr=False)


@dataclass
class ParsedMail:
    sender: str | None  # the From address, lower case; None when there is no usable one
    sender_name: str | None
    subject: str
    date: datetime | None  # the Date header, when it parses with a timezone
    message_id: str | None
    replies_to: list[str]  # In-Reply-To and References, the ids of the messages it answers
    headers: list[tuple[str, str]]
    text: str
    attachments: list[Attachment]
    notes: list[str]  # what was cut or refused, for the agent

    def as_record(self) -> dict[str, Any]:
        """JSON-ready, for sealing (attachment bytes as hex: small, and exact)."""
        record = asdict(self)
        record["date"] = self.date.isoformat() if self.date else None
        record["attachments"] = [{**{k: v for k, v in asdict(a).items() if k != "data"},
                                  "data": a.data.hex() if a.data is not None else None}
                                 for a in self.attachments]
        return record


def _sound(text: str) -> str:
    """`text` as Unicode can write it: a lone surrogate becomes the replacement character."""
    return _SURROGATES.sub("\ufffd", text)


def sound_record(value: Any) -> Any:
    """A stored message's record (its JSON) with every text made sound: records filed before
    filing did so (2026-12-04) may hold lone surrogates, and one of them made every Inbox page
    that showed it a 500."""
    if isinstance(value, str):
        return _sound(value)
    if isinstance(value, list):
        return [sound_record(v) for v in value]
    if isinstance(value, dict):
        return {sound_record(k): sound_record(v) for k, v in value.items()}
    return value


def _line(text: str, limit: int) -> str:
    """A header's or a file name's text as one sound line of at most `limit` characters."""
    # Without direction controls: in a name or a subject line they make the text after them read
    # backwards ("\u202eAda <moc.rekcatta@...>"), so the console would show what the header does
    # not say. Legitimate right-to-left text needs none of them.
    return " ".join(one_line(DIRECTION_CONTROLS.sub("", _sound(text))).split())[:limit]


def _text_of_header(message: Message, name: str) -> str | None:
    """The header's decoded text, or its raw text when it does not decode; one line, bounded."""
    try:
        value = message.get(name)
        text = None if value is None else str(value)
    except Exception:  # noqa: BLE001 - the header registry raises many kinds on hostile input
        # raw_items() does not go through the header registry that just failed.
        raw = next((str(v) for k, v in message.raw_items() if k.lower() == name.lower()), None)
        text = raw
        if raw is not None:
            try:
                text = str(make_header(decode_header(raw)))
            except Exception:  # noqa: BLE001 - an unknown charset or broken encoded-word
                pass
    return None if text is None else _line(text, _HEADER_CHARS)


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # "-0000" (or no zone): the sender's clock says nothing about where it is; not a usable date.
    try:
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except OverflowError:  # year 9999 at a negative offset: past the calendar's end in UTC
        return None


def _raw_header(message: Message, name: str) -> list[str]:
    """Each `name` header as written, undecoded (8-bit bytes read as UTF-8)."""
    return [str(value).encode("ascii", "surrogateescape").decode("utf-8", "replace")
            for key, value in message.raw_items() if key.lower() == name.lower()]


def _display_name(name: str) -> str | None:
    try:
        name = str(make_header(decode_header(name)))
    except Exception:  # noqa: BLE001 - an unknown charset or broken encoded-word: kept as written
        pass
    return _line(name, _HEADER_CHARS) or None


def _sender(message: Message, notes: list[str]) -> tuple[str | None, str | None]:
    """The From address and display name. The address is read from the header as written: an
    encoded-word cannot hold an address (RFC 2047, section 5), and decoding the header first
    read `=?utf-8?q?ada=40example.com?=` as ada@example.com. Only the display name is decoded."""
    written = _raw_header(message, "From")
    if len(written) > 1:
        # Which of them the receiving server checked is not ours to guess (RFC 5322: exactly one).
        notes.append(f"{len(written)} From headers: no sender address is believed")
        return None, None
    if not written:
        return None, None
    try:
        found = [(name, addr) for name, addr in getaddresses([" ".join(one_line(written[0]).split())]) if addr]
    except (RecursionError, ValueError, IndexError):  # hundreds of nested comments: "(((..."
        return None, None
    if len(found) != 1:
        return None, None
    name, addr = found[0]
    shown = _display_name(name)
    local, at, domain = addr.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() or c in "<>,;" for c in addr):
        return None, shown
    posing = {a.lower() for a in _ADDRESS_LIKE.findall(shown or "")} - {addr.lower()}
    if posing:
        notes.append(f"the sender's name shows the address {sorted(posing)[0]}, but the message is from "
                     f"{addr.lower()}")
    return addr.lower(), shown


def _message_ids(*values: str | None) -> list[str]:
    ids: list[str] = []
    for value in values:
        for token in (value or "").split():
            if token.startswith("<") and token.endswith(">") and token not in ids:
                ids.append(token)
    return ids[:50]


def _parts(root: Message, notes: list[str]) -> Iterator[Message]:
    """The leaf parts, depth first, without recursion (a hostile message nests thousands deep)."""
    stack: list[tuple[Message, int]] = [(root, 0)]
    count = 0
    while stack:
        part, depth = stack.pop()
        count += 1
        if count > MAX_PARTS:
            notes.append(f"more than {MAX_PARTS} parts: the rest were not read")
            return
        if part.is_multipart():
            if depth >= MAX_DEPTH:
                notes.append(f"parts nested deeper than {MAX_DEPTH} levels were not read")
                continue
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend((child, depth + 1) for child in reversed(children))
            continue
        yield part


def _decoded_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return _sound(payload.decode(charset, errors="replace"))
    except LookupError:  # a charset Python does not know
        return payload.decode("utf-8", errors="replace")


def html_to_text(html: str) -> str:
    converter = html2text.HTML2Text(bodywidth=0)
    converter.ignore_images = True
    converter.unicode_snob = True  # "ö" stays "ö" (not "o")
    converter.ignore_emphasis = True
    return converter.handle(html)


# Markup read as text at most this many times the text kept: reading HTML costs about 0.7 s of CPU
# a megabyte, so a 25 MiB HTML-only message took 18 s of the worker's CPU for a text cut at
# 100,000 characters anyway. Markup seldom holds more than ten characters for each one of text.
HTML_PER_TEXT_CHAR = 10


def _html_text(parts: list[str], text_chars: int, notes: list[str]) -> str:
    """The text of the HTML `parts`, reading at most HTML_PER_TEXT_CHAR times `text_chars` of them."""
    read = budget = text_chars * HTML_PER_TEXT_CHAR
    texts = []
    for part in parts:
        if budget <= 0:
            break
        if len(part) > budget:
            notes.append(f"only the first {read} characters of the HTML were read as text: read the rest in the "
                         "mailbox")
        texts.append(html_to_text(part[:budget]))
        budget -= len(part)
    return "\n".join(texts)


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001 - a broken RFC 2231 parameter
        name = None
    return _line(name, 255) if name else None


def parse_message(raw: bytes, limits: MailLimitsLike,
                  refusal: Callable[[str | None, str], str | None]) -> ParsedMail:
    """Read `raw`; `refusal(filename, content_type)` says why a type of attachment is refused.
    Never raises: a message nothing here can read is filed as unreadable, for an agent to read in
    the mailbox, so that it cannot stop the reader on every restart (it is fetched again until
    filed) while the statutory clocks of the messages behind it run."""
    try:
        return _parse(raw, limits, refusal)
    except Exception as exc:  # noqa: BLE001 - whatever it was, the message is filed and the reader goes on
        return ParsedMail(sender=None, sender_name=None, subject="", date=None, message_id=None, replies_to=[],
                          headers=[], text="", attachments=[],
                          notes=[f"the message could not be read ({type(exc).__name__}): read it in the mailbox"])


def bounded_headers(raw: bytes) -> tuple[bytes, list[str]]:
    """`raw` with each header cut at HEADER_BYTES and the header block at HEADERS_BYTES (whole
    lines), and what was cut. Python's header parser takes time and memory that grow with the
    square of a header's encoded words: one header of half a megabyte, legal and passed by every
    relay, took seconds and gigabytes, on the worker's event loop."""
    end = raw.find(b"\r\n\r\n")
    end, gap = (raw.find(b"\n\n"), 2) if end < 0 else (end, 4)
    if end < 0:
        end, gap = len(raw), 0
    block, body = raw[:end], raw[end:]
    if len(block) <= HEADER_BYTES:  # no header can be longer than the block: nothing to cut
        return raw, []
    kept: list[bytes] = []
    header = total = 0  # bytes kept of the current header, and of all of them
    cut = False
    for line in block.splitlines(keepends=True):
        if line[:1] not in (b" ", b"\t"):  # not a folded continuation: a new header starts
            header = 0
        if header + len(line) > HEADER_BYTES or total + len(line) > HEADERS_BYTES:
            cut = True
            continue
        header, total = header + len(line), total + len(line)
        kept.append(line)
    if not cut:
        return raw, []
    kept_block = b"".join(kept).rstrip(b"\r\n")
    return kept_block + (body if gap else b""), [
        f"headers longer than {HEADER_BYTES} bytes (or {HEADERS_BYTES} in all) were cut: read them in the mailbox"]


def _parse(raw: bytes, limits: MailLimitsLike, refusal: Callable[[str | None, str], str | None]) -> ParsedMail:
    notes: list[str] = []
    raw, cut = bounded_headers(raw)
    notes.extend(cut)
    too_large = len(raw) > limits.message_bytes
    if too_large:
        # Only the header block is read: its sender and subject let an agent find it in the mailbox.
        end = raw.find(b"\r\n\r\n")
        end = raw.find(b"\n\n") if end < 0 else end
        raw = raw[: max(end, 0)][:65536] + b"\r\n\r\n"
        notes.append(f"the message is larger than {limits.message_bytes} bytes: only its headers were kept; "
                     "read it in the mailbox")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    headers = [(name, text) for name in EVIDENCE_HEADERS
               if (text := _text_of_header(message, name)) is not None]
    sender, sender_name = _sender(message, notes)
    if sender is None:
        notes.append("no usable sender address: enter the subject's address yourself")
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    for part in _parts(message, notes):
        content_type = part.get_content_type()
        filename = _filename(part)
        disposition = (part.get_content_disposition() or "").lower()
        if content_type in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            (plain if content_type == "text/plain" else html).append(_decoded_text(part))
            continue
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        attachment = Attachment(filename=filename or "(unnamed)", content_type=content_type, size=len(data))
        if len(attachments) >= limits.attachments:
            attachment.refused = f"more than {limits.attachments} attachments"
        elif len(data) > limits.attachment_bytes:
            attachment.refused = f"larger than {limits.attachment_bytes} bytes"
        else:
            attachment.refused = refusal(filename, content_type)
        if attachment.refused is None:
            attachment.data = data
        else:
            notes.append(f"attachment {attachment.filename!r} not kept: {attachment.refused}")
        attachments.append(attachment)
    text = "\n".join(plain) if any(p.strip() for p in plain) else _html_text(html, limits.text_chars, notes)
    text = text.replace("\r\n", "\n").replace("\x00", "")
    if len(text) > limits.text_chars:
        text = text[: limits.text_chars]
        notes.append(f"the text was cut at {limits.text_chars} characters")
    return ParsedMail(
        sender=sender, sender_name=sender_name, subject=_text_of_header(message, "Subject") or "",
        date=_date(_text_of_header(message, "Date")),
        message_id=next(iter(_message_ids(_text_of_header(message, "Message-ID"))), None),
        replies_to=_message_ids(_text_of_header(message, "In-Reply-To"), _text_of_header(message, "References")),
        headers=headers, text=text, attachments=attachments, notes=notes,
    )


def content_fingerprint(raw: bytes) -> str:
    """What stays the same when the same message is delivered twice (once by IMAP with the
    server's Received and Return-Path headers, once through the sink): its own headers that
    identify it, and its body. Transport headers are left out."""
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    message = email.message_from_bytes(head + b"\n\n", policy=email.policy.compat32)
    identity = [str(message.get(name, "")).strip() for name in ("From", "Date", "Subject", "Message-ID")]
    body = b"\n".join(line.rstrip() for line in body.split(b"\n")).rstrip()
    digest = hashlib.sha256()
    for value in identity:
        digest.update(value.encode("utf-8", "replace") + b"\0")
    digest.update(body)
    return digest.hexdigest()


def received_at_for(date: datetime | None, arrived_at: datetime, tolerance: timedelta) -> datetime:
    """When the statutory clock starts. The message's own Date says when the subject sent it, which
    is when it reached us unless mail was delayed: it is believed within `tolerance` before the
    arrival. A Date after the arrival (beyond clock skew) or long before it is written by the
    sender's software or forged: believing a future one would start the clock later than the law
    does, believing one months old would make a request overdue on arrival. Then the arrival is
    the receipt, which our server witnessed."""
    if date is None or date > arrived_at + CLOCK_SKEW or date < arrived_at - tolerance:
        return arrived_at
    return min(date, arrived_at)
