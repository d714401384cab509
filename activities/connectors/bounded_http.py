"""HTTP clients for the connectors whose answers are read whole, with a cap on an answer's size
and on the time it takes to arrive, and a reader of JSON answers that bounds their depth, the
count of values they hold and the length of their strings holding an emoji (all measured before
any parser sees them, without recursion), parsing them from their bytes.

httpx reads a body into memory however long it is, and its timeout bounds each read, not the
exchange: a hostile or broken processor answering a status poll, a discovery document or a token
call with an endless body, a chunk every few seconds, grew the shared worker's memory until it
was killed (attacker audit); one sending a byte every few seconds, each well within the read
timeout, held the task for as long as it liked. Past the cap the answer is refused as a protocol
error, past the deadline as a read timeout, which each connector already treats as the service
being unavailable: retried, then flagged for staff.

The cap is on the answer as read, after its Content-Encoding: httpx inflates gzip and deflate
itself, after the transport, so a cap on the bytes received let a 200 KB gzip answer in as 200 MB
of JSON (a 32 MB one would have been 32 GB). The transport inflates them instead, a slice at a
time, counting what they give against the cap; any other encoding, or more than one, is refused.
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from pydantic_core import from_json

from activities.connectors.http_answers import kind_of
from activities.connectors.tls import tls_context

ANSWER_BYTES = 32 * 1024 * 1024  # an OpenDSR results document or a SaaS page is far smaller
DOCUMENT_BYTES = 1024 * 1024  # a discovery document, a certificate
# How long an answer may take whole, from the request to its last byte, as a multiple of the
# client's timeout for each read: a slow link still brings the largest answer in time.
DEADLINE_READS = 4
# JSON nested deeper than any API's documents (Stripe's deepest, expanded, are about six levels):
# deeper, every recursive reader of it (the JSON decoder itself past about a thousand, templates,
# the payloads Temporal encodes) fails with a RecursionError that names nothing.
JSON_DEPTH = 32
# At most one JSON value (an object's keys counted as values too) for each VALUE_BYTES of the cap
# an answer is read under: 2,097,152 in the 32 MiB of ANSWER_BYTES. Python spends 50 to 90 bytes
# on each value it parses (an object, a list, a short string), so a valid answer of tiny values
# (`[{},{},...]`, `{"a":0,"b":0,...}`) cost the shared worker about a gigabyte at the cap, and
# one forged processor could have it killed with every request's steps on it; at the bound the
# worst costs about 200 MB. Real records hold 9 to 20 bytes a value (keys, text, dates, amounts:
# a SaaS page of 1,000 records of 50 fields is about 105,000 values in 1.2 MiB), so the densest
# real answer fits up to about half the cap, most whole. Scaled to the cap: a discovery document
# (1 MiB) is allowed 65,536, a callback (256 KiB) 16,384.
VALUE_BYTES = 16
# At most one character in strings holding a character past U+FFFF (an emoji) for each WIDE_BYTES
# of the cap: Python holds each character of such a string in 4 bytes, an ASCII one included, so
# one emoji in a string of 32 MiB of ASCII made it 128 MB. At the bound such strings cost as much
# as the cap (8,388,608 characters in 32 MiB): a whole answer then about 3 times its bytes. Real
# text with emoji (messages, names, notes) fits: a quarter of the cap's characters is more than
# a chat export of a single subject holds.
WIDE_BYTES = 4


class AnswerTooLarge(httpx.RemoteProtocolError):
    """An answer longer than the client's cap."""


class AnswerTooSlow(httpx.ReadTimeout):
    """An answer that did not arrive whole within the client's deadline."""


class AnswerEncoded(httpx.RemoteProtocolError):
    """An answer in a Content-Encoding the client did not ask for, or one that does not decode."""


class NotJson(ValueError):
    """An answer that is not the JSON document it should be; the message says what it is."""


class TooDeep(NotJson):
    """JSON nested deeper than JSON_DEPTH."""


class TooMany(NotJson):
    """JSON holding more values than its cap allows (one for each VALUE_BYTES)."""


# Where a bounded client's response keeps the cap it was read under, for its JSON reader.
_CAP = "dsrflow.answer_cap"


# The encodings the transport asks for and inflates itself (with their zlib window bits): httpx's
# own, without those it adds once a package for them is installed (br, zstd), which it would
# inflate past the cap.
ENCODINGS = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
# The most one step of inflating gives: a chunk of 64 KiB of gzip, inflated at once, can be 64 MiB.
_INFLATED = 64 * 1024


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, limit: int, url: httpx.URL, ends_at: float | None,
                 encoding: str | None = None) -> None:
        self._stream, self._limit, self._url, self._ends_at = stream, limit, url, ends_at
        self._encoding = encoding

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        chunks = aiter(self._stream)
        inflate: Any = None
        while True:
            try:
                # Each read waits only until the deadline: the timeout never spans a `yield`.
                async with asyncio.timeout_at(self._ends_at):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                if inflate is not None and not inflate.eof:
                    raise AnswerEncoded(f"{self._url.host}{self._url.path} answered a {self._encoding} body "
                                        "cut short") from None
                return
            except TimeoutError:
                raise AnswerTooSlow(f"{self._url.host}{self._url.path} was still answering at the deadline") from None
            if self._encoding is not None and inflate is None and chunk:
                inflate = _inflater(self._encoding, chunk)
            for piece in self._inflated(inflate, chunk) if inflate is not None else (chunk,):
                seen += len(piece)
                if seen > self._limit:
                    raise AnswerTooLarge(f"{self._url.host}{self._url.path} answered more than {self._limit} bytes")
                yield piece

    def _inflated(self, inflate: Any, chunk: bytes) -> Iterator[bytes]:
        """What `chunk` inflates to, _INFLATED bytes at a time, so that no step holds more."""
        try:
            while chunk:
                piece = inflate.decompress(chunk, _INFLATED)
                chunk = inflate.unconsumed_tail
                yield piece
        except zlib.error:
            raise AnswerEncoded(f"{self._url.host}{self._url.path} answered a body that is not {self._encoding} "
                                "as it said") from None

    async def aclose(self) -> None:
        await self._stream.aclose()


def _inflater(encoding: str, first: bytes) -> Any:
    """An inflater for `encoding`, the body opening with `first`. RFC 9110's deflate is zlib's
    format, whose two first bytes are a multiple of 31 naming method 8; some servers send it raw,
    which httpx takes too."""
    wbits = ENCODINGS[encoding]
    if encoding == "deflate" and not (len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0):
        wbits = -zlib.MAX_WBITS
    return zlib.decompressobj(wbits)


class _Capped(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int, deadline: float | None) -> None:
        self._inner, self._limit, self._deadline = inner, limit, deadline

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        ends_at = asyncio.get_running_loop().time() + self._deadline if self._deadline is not None else None
        request.headers["Accept-Encoding"] = ", ".join(ENCODINGS)
        try:
            async with asyncio.timeout_at(ends_at):
                response = await self._inner.handle_async_request(request)
        except TimeoutError:
            raise AnswerTooSlow(f"{request.url.host}{request.url.path} sent no answer by the deadline") from None
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._limit:
            await response.aclose()
            raise AnswerTooLarge(f"{request.url.host}{request.url.path} announced {declared} bytes")
        codings = [c.strip().lower() for c in response.headers.get_list("content-encoding", split_commas=True)]
        codings = [c for c in codings if c not in ("", "identity")]
        if len(codings) > 1 or (codings and codings[0] not in ENCODINGS):
            await response.aclose()
            raise AnswerEncoded(f"{request.url.host}{request.url.path} answered in the content encoding "
                                f"{', '.join(codings)[:40]!r}, which was not asked for")
        if codings:  # inflated here, within the cap: httpx must not inflate it again
            del response.headers["content-encoding"]
            response.headers.pop("content-length", None)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CappedStream(response.stream, self._limit, request.url, ends_at,
                                        codings[0] if codings else None)
        response.extensions[_CAP] = self._limit
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def bounded_client(*, limit: int = ANSWER_BYTES, deadline: float | None = None, **options: Any) -> httpx.AsyncClient:
    """An httpx client (TLS verified with the process's one context) whose answers stop at `limit`
    bytes and at `deadline` seconds (default: DEADLINE_READS times a numeric `timeout`)."""
    timeout = options.get("timeout")
    if deadline is None and isinstance(timeout, (int, float)):
        deadline = DEADLINE_READS * timeout
    return httpx.AsyncClient(transport=_Capped(httpx.AsyncHTTPTransport(verify=tls_context()), limit, deadline),
                             **options)


def what_failed(exc: httpx.TransportError) -> str:
    """A transport failure in words for a task's message: the caps by what they are, the rest by name."""
    if isinstance(exc, AnswerTooLarge):
        return "its answer was longer than the connector reads"
    if isinstance(exc, AnswerTooSlow):
        return "its answer did not arrive whole in time (sent too slowly)"
    if isinstance(exc, AnswerEncoded):
        return "its answer was in a content encoding not asked for, or not in the one it named"
    return type(exc).__name__


def json_document(response: httpx.Response, *, labelled: bool = True) -> Any:
    """The answer's JSON document (None for an empty body). NotJson when it does not parse, is
    nested deeper than JSON_DEPTH or holds more values than the cap of the client that read it
    allows (both refused before any parser sees it), or, if `labelled`, says it
    is in another media type than JSON (`application/json`, `...+json`). Unlabelled readers take
    JSON whatever type it is sent as, and name what it is when it is not: "is HTML, not JSON"."""
    if not response.content:
        return None
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    said_json = kind == "application/json" or kind.endswith("+json")
    if labelled and not said_json:
        raise NotJson(f"is {kind or 'of no stated type'}, not JSON")
    try:
        return json_bytes(response.content, cap=response.extensions.get(_CAP, ANSWER_BYTES))
    except (TooDeep, TooMany):
        raise
    except NotJson:
        raise NotJson(_not_json(kind, said_json, response.content)) from None


_NOT_JSON = "is not valid JSON"


def json_bytes(content: bytes, *, cap: int = ANSWER_BYTES) -> Any:
    """The JSON document `content` holds (UTF-8, or UTF-16 or -32 as json.loads would take them,
    whichever the first bytes show), `content` having been read under a cap of `cap` bytes;
    NotJson when it is nested deeper than JSON_DEPTH or holds more than one value for each
    VALUE_BYTES of `cap` (TooDeep, TooMany: refused before any parser sees it), or is no JSON. A
    body a processor signed (a callback) is read so too.

    Parsed from the bytes (pydantic's JSON parser), never from the whole answer as one text:
    Python holds a text at the width of its widest character, so one emoji in 32 MiB of ASCII made
    the decoded answer 128 MB, on top of its bytes and the strings parsed from it (about 300 MB in
    all). A lone half of a surrogate pair (`"\\ud83d"`) is refused as no JSON: json.loads read it,
    and the package then failed to write it as UTF-8."""
    content = _utf8(content)
    # A parser reads one value after any whitespace and refuses what follows it: only a document
    # opening a container can nest, or hold more than that one value; or a string, be wide.
    if _OPENING.match(content):
        values, wide = cap // VALUE_BYTES, cap // WIDE_BYTES
        shape = _shape(content, JSON_DEPTH, values, wide)
        if shape == "deeper":
            raise TooDeep(f"is JSON nested deeper than {JSON_DEPTH} levels")
        if shape == "more":
            raise TooMany(f"holds more than {values:,} JSON values")
        if shape == "wide":
            raise TooMany(f"holds more than {wide:,} characters in strings with an emoji or another "
                          "character past U+FFFF")
        if shape == "unbalanced":
            raise NotJson(_NOT_JSON)
    try:
        # Keys only are shared between documents (a record's field names); values are each document's own.
        return from_json(content, cache_strings="keys")
    except ValueError:
        raise NotJson(_NOT_JSON) from None


def _utf8(content: bytes) -> bytes:
    """`content` as UTF-8, which JSON between systems must be (RFC 8259) and the parser reads:
    without the byte-order mark some write before it; UTF-16 or -32 recoded (their text, at 2 to 4
    bytes a character, is no larger than the answer's bytes or twice them)."""
    encoding = json.detect_encoding(content)
    if encoding == "utf-8":
        return content
    if encoding == "utf-8-sig":
        return content[3:]
    try:
        return content.decode(encoding).encode()
    except UnicodeError:
        raise NotJson(_NOT_JSON) from None


def json_object(response: httpx.Response, *, labelled: bool = True) -> dict[str, Any]:
    """The answer's JSON object (`json_document`); NotJson too when it is empty or another value
    ("is a list where an object was expected")."""
    document = json_document(response, labelled=labelled)
    if document is None:
        raise NotJson("is empty where a JSON object was expected")
    if not isinstance(document, dict):
        raise NotJson(f"is {kind_of(document)} where a JSON object was expected")
    return document


def _not_json(kind: str, said_json: bool, content: bytes) -> str:
    if kind in ("text/html", "application/xhtml+xml") or content.lstrip()[:1] == b"<":
        return "is HTML, not JSON"  # an error page: a proxy's, a load balancer's, a login's
    return _NOT_JSON if said_json or not kind else f"is {kind}, not JSON"


# What may hold brackets, commas or colons that are no JSON's: a JSON string, once its escapes
# are out. Escapes go first, with bytes.replace (an escaped backslash, then an escaped quote: what is
# left of a run of backslashes is one or none), which pairs them as the parser does up to the first
# thing it refuses (outside strings JSON has no backslash). The string pattern matches wherever it
# starts and repeats a single character, so the scan is linear in time: one that had to find a
# string's closing quote past its escapes failed at every quote of an unclosed run and scanned the
# rest of the text from each (an answer of 80 KB of `"\\` took 18 s of the worker's CPU, one of
# the 32 MB the cap lets in, days). A string left open runs to the end of the text: that is no
# JSON, which the parser refuses. re.sub keeps each piece it leaves as an object of its own (some
# 50 bytes more than its characters): over a whole 32 MB answer of short pieces (`[],[],...`, or
# `"ab\n` again and again for the escape pattern this replaced) that was up to 900 MB before any
# parsing, so the text is read in slices of _SLICE bytes, each starting inside a string if
# the quotes before it are odd in number.
_STRING = re.compile(rb'"[^"]*"?')
_NOT_BRACKETS = re.compile(rb"[^\[\]{}]+")
_OPENING = re.compile(rb'[ \t\n\r]*[\[{"]')  # JSON's whitespace, as its parsers skip it
_SLICE = 256 * 1024
# Depth does not depend on a container's kind ([ or {); what does not pair up is the parser's to refuse.
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


def _shape(text: bytes, depth: int, values: int, wide: int) -> str:
    """What the JSON document `text` (UTF-8: no byte of a character past ASCII is a quote, a
    backslash, a bracket, a comma or a colon) would be to a parser: "more" than `values` values (the
    document itself, each container it opens, each comma and colon: a key counts as one), "wide"
    when its strings holding a character past U+FFFF hold more than `wide` characters, "deeper"
    than `depth`, "unbalanced" when its containers do not close (no JSON), else "ok". The count
    stops at the slice that passes `values` or `wide`, having read no further; a document that is
    then already too deep is called that, the fault that names it better."""
    # Each escaped backslash or quote becomes one byte (one character, as to the parser).
    unescaped = text.replace(b"\\\\", b".").replace(b'\\"', b".")
    if _HIGH_SURROGATE.search(unescaped):  # an escaped emoji: its first half made a 4-byte character
        for escape in _HIGH_SURROGATES:
            unescaped = unescaped.replace(escape, b"\xf0\x80\x80\x80")
    counted, held, brackets, inside, open_wide, open_chars = 1, 0, [], False, False, 0
    for start in range(0, len(unescaped), _SLICE):
        part = unescaped[start:start + _SLICE]
        if inside:  # the string the last slice left open goes on, perhaps to its end in this one
            closing = part.find(b'"') + 1 or len(part)
            head, part = part[:closing], part[closing:]
            open_chars += _characters(head)
            open_wide = open_wide or _WIDE.search(head) is not None
            inside = not head.endswith(b'"')
            if not inside and open_wide:
                held += open_chars
        if part.count(b'"') % 2:  # a string opens in this slice and goes on past it
            opening = part.rfind(b'"')
            part, tail = part[:opening], part[opening:]
            inside, open_wide, open_chars = True, _WIDE.search(tail) is not None, _characters(tail)
        outside = _STRING.sub(b"", part)
        counted += sum(map(outside.count, (b",", b":", b"[", b"{")))
        held += _characters(b"".join(_WIDE_STRINGS.findall(part)))
        brackets.append(_NOT_BRACKETS.sub(b"", outside).translate(_ONE_KIND))
        if counted > values or held > wide:
            if b"[" * (depth + 1) in b"".join(brackets):
                return "deeper"
            return "more" if counted > values else "wide"
    if inside and open_wide:  # a string left open: no JSON, but not read to find out
        held += open_chars
    return "wide" if held > wide else _nesting(b"".join(brackets), depth)


# A character past U+FFFF (an emoji): Python holds each character of a string holding one in 4
# bytes, an ASCII one included. As UTF-8, its first byte; escaped, the first half of its pair.
_WIDE = re.compile(rb"[\xf0-\xf4]")
_HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB]")
_HIGH_SURROGATES = [b"\\u" + d + h for d in (b"d", b"D") for h in (b"8", b"9", b"a", b"b", b"A", b"B")]
# Every string, in order; the one group holds those holding such a character (findall: the rest b"").
_WIDE_STRINGS = re.compile(rb'"[^"\xf0-\xf4]*+"|("[^"]*+")')
_CONTINUATION = bytes(range(0x80, 0xC0))


def _characters(strings: bytes) -> int:
    """How many characters `strings` (of the unescaped text) hold: a UTF-8 character's
    continuation bytes are none of their own, nor the rest of an escape (`\\n`, `\\u00e9`)."""
    continuations = len(strings) - len(strings.translate(None, _CONTINUATION))
    return len(strings) - continuations - strings.count(b"\\") - 4 * strings.count(b"\\u")


def _nesting(brackets: bytes, limit: int) -> str:
    """How the containers `brackets` opens (`[`) and closes (`]`) nest: "deeper" than `limit`,
    "unbalanced" when they do not close (no JSON), else "ok". Without recursion, before parsing:
    Python's JSON decoder is recursive (past about a thousand levels a RecursionError that names
    nothing), and so is every reader of what it returns (templates, the payloads Temporal
    encodes). Each pass takes out the containers that hold no other (bytes.replace does not look
    again at what it joined), so `limit` passes empty any document no deeper than that; more
    than `limit` openers in a row are deeper at once. Linear in the length: each step reads
    it, or what is left of it, once, and there are at most `limit` + 2 steps."""
    if b"[" * (limit + 1) in brackets:
        return "deeper"
    for _ in range(limit):
        if not brackets:
            return "ok"
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return "unbalanced"
        brackets = shorter
    return "deeper" if brackets else "ok"
