"""Attacks on the privacy mailbox by a hostile sender (docs/mailbox.md, "Hostile mail"): each
files a message the way the IMAP reader and the SMTP sink do (activities/mailbox_intake.py
file_message) and looks at what the console shows. The messages go into a database of their own
per test, so a poison message cannot reach another test's Inbox."""

from __future__ import annotations

import contextlib
import html
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx

from activities import mailbox_intake
from activities.mailbox_intake import Filed, file_message
from dsrflow.crypto.keys import load_secret_key
from dsrflow.crypto.mail_files import open_record, seal_record
from dsrflow.domain.inbound_mail import parse_message
from policy.mailbox import load_mailbox_policy
from tests.conftest import database_pool
from tests.support import OUR_SENDER, api_client, console_sign_in


@contextlib.asynccontextmanager
async def inbox(postgres, settings, dev_server, task_queue, name: str) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    """An agent's console on a database of its own: (client, file) where `await file(raw,
    source=...)` files a message as the reader ("imap") or the sink ("sink") does."""
    async with database_pool(postgres, name) as (url, pool):
        own = settings.model_copy(update={"database_url": url})

        async def file(raw: bytes, source: str = "imap") -> Filed:
            done = await file_message(pool, load_secret_key(own), load_mailbox_policy(), raw,
                                      arrived_at=datetime.now(UTC), source=source, our_sender=OUR_SENDER)
            assert done is not None
            return done

        async with api_client(own, dev_server.client, task_queue) as http:
            await console_sign_in(http, pool, "agent")
            yield http, file


async def test_text_that_is_not_unicode_neither_stops_the_reader_nor_breaks_the_inbox(
        postgres, settings, dev_server, task_queue):
    """UTF-7 (a charset Python knows) and Python's own unicode_escape codec decode to lone
    surrogates, which no page or database can encode. Before, a Message-ID so written made filing
    raise (the keyed hash encodes it), so the reader stopped on that message for good, retrying it
    while later mail waited; a Subject or body so written was filed, and then every look at the
    Inbox was a 500, hiding every message."""
    async with inbox(postgres, settings, dev_server, task_queue, "attack_surrogates") as (http, file):
        subject_only = await file(
            b"From: =?utf-7?q?+2AA-?= <poison@example.org>\r\nSubject: =?utf-7?q?Hi_+2AA-?=\r\n"
            b"Content-Type: text/plain; charset=unicode_escape\r\n\r\n\\ud800 please delete my data\r\n")
        message_id = await file(
            b"From: poison@example.org\r\nSubject: hello\r\nMessage-ID: =?utf-7?q?<+2AA-@x>?=\r\n"
            b"In-Reply-To: =?utf-7?q?<+2AA-@y>?=\r\nContent-Type: text/plain; charset=utf-7\r\n\r\n+2AA- text\r\n")
        assert subject_only.created and message_id.created
        listing = await http.get("/console/inbox")
        assert listing.status_code == 200 and "Hi \ufffd" in listing.text
        for filed in (subject_only, message_id):
            page = await http.get(f"/console/inbox/{filed.message_id}")
            assert page.status_code == 200 and "\ufffd" in page.text


async def test_a_message_filed_with_unsound_text_before_the_fix_still_shows(postgres, settings, dev_server, task_queue):
    """Records filed before filing made text sound may hold lone surrogates: the Inbox read them
    back as they were, and each page that showed one was a 500, hiding every message listed with
    it. They are made sound as they are read (api/read_models/inbox_queries.py)."""
    async with database_pool(postgres, "attack_old_surrogates") as (url, pool):
        own = settings.model_copy(update={"database_url": url})
        filed = await file_message(pool, load_secret_key(own), load_mailbox_policy(),
                                   b"From: old@example.org\r\nSubject: old\r\n\r\nplease delete my data\r\n",
                                   arrived_at=datetime.now(UTC), source="imap", our_sender=OUR_SENDER)
        assert filed is not None
        row = await pool.fetchrow("SELECT sealed FROM mailbox_messages WHERE id = $1::uuid", filed.message_id)
        record = open_record(row["sealed"], load_secret_key(own), filed.message_id)
        record.update(subject="Hi \ud800", sender_name="Old \udc00", text="\ud800 please delete my data")
        await pool.execute("UPDATE mailbox_messages SET sealed = $2 WHERE id = $1::uuid", filed.message_id,
                           seal_record(record, load_secret_key(own), filed.message_id))
        async with api_client(own, dev_server.client, task_queue) as http:
            await console_sign_in(http, pool, "agent")
            for path in ("/console/inbox", f"/console/inbox/{filed.message_id}"):
                page = await http.get(path)
                assert page.status_code == 200 and "\ufffd" in page.text, path


def _from_and_address(page: str) -> tuple[str, str]:
    """The From line the message's page shows, and the address its convert form proposes."""
    text = html.unescape(page)
    return (text.split("<dt>From</dt><dd>")[1].split("</dd>")[0],
            text.split('id="email" name="email" spellcheck="false" value="')[1].split('"')[0])


async def test_a_sender_posing_as_someone_else_is_not_shown_as_them(postgres, settings, dev_server, task_queue):
    """Ways to make the console show a victim's address as the sender. Before: an address in an
    encoded-word (which RFC 2047 forbids, so no receiving server checks it) was decoded and believed;
    of two From headers the first was believed, whichever the receiving server checked; a display
    name holding another address, and one with a right-to-left override (U+202E) reversing what
    follows it, were shown beside the address with no warning."""
    async with inbox(postgres, settings, dev_server, task_queue, "attack_senders") as (http, file):
        async def shown(raw: bytes) -> tuple[str, str, str]:
            filed = await file(b"Subject: please delete my data\r\n" + raw + b"\r\n\r\nPlease. %s\r\n"
                               % uuid.uuid4().hex.encode(), source="sink")
            page = (await http.get(f"/console/inbox/{filed.message_id}")).text
            return (*_from_and_address(page), html.unescape(page))

        line, proposed, page = await shown(b"From: =?utf-8?q?ada=40example=2Ecom?=")
        assert (line, proposed) == ("(no usable address)", "") and "no usable sender address" in page
        line, proposed, page = await shown(b"From: ada@example.com\r\nFrom: eve@attacker.example")
        assert (line, proposed) == ("(no usable address)", "") and "2 From headers" in page
        for posing in (b'"ada@example.com" <eve@attacker.example>',
                       b"=?utf-8?q?ada=40example=2Ecom?= <eve@attacker.example>"):
            line, proposed, page = await shown(b"From: " + posing)
            assert line == "<bdi>ada@example.com</bdi> <eve@attacker.example>" and proposed == "eve@attacker.example"
            assert "the sender's name shows the address ada@example.com, but the message is from " \
                   "eve@attacker.example" in page
        line, proposed, page = await shown("From: \u202eAda <eve@attacker.example>".encode())
        assert line == "<bdi>Ada</bdi> <eve@attacker.example>" and "\u202e" not in page
        # Already safe: Sender and Reply-To are shown among the headers, never taken for the sender.
        line, proposed, _ = await shown(b"From: ada@example.com\r\nSender: eve@attacker.example\r\n"
                                        b"Reply-To: eve@attacker.example")
        assert (line, proposed) == ("<ada@example.com>", "ada@example.com")


async def test_a_costly_message_does_not_stall_the_worker(postgres, settings, dev_server, task_queue, monkeypatch):
    """Ten thousand one-line parts (360 kB; a 25 MiB message holds seventy times as many): the
    parser takes seconds for each megabyte. Before, that time was spent on the worker's event loop,
    which also runs the requests' activities and their heartbeats, so one message an attacker may
    send again and again stalled every request; now it is parsed on a thread, and it is filed
    with a note that the parts past the 200th were not read."""
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(10_000))
    raw = b"From: many@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    # Where the parse runs, not how long the loop stood still: a wall-clock bound failed CI's
    # loaded machine (0.6 and 0.7 s against 0.5) while the parse was already off the loop.
    parsed_on: list[int] = []

    def parse(*args: object) -> object:
        parsed_on.append(threading.get_ident())
        return parse_message(*args)

    monkeypatch.setattr(mailbox_intake, "parse_message", parse)
    async with inbox(postgres, settings, dev_server, task_queue, "attack_costly") as (http, file):
        filed = await file(raw)
        assert parsed_on and threading.get_ident() not in parsed_on, "parsed on the event loop's thread"
        page = html.unescape((await http.get(f"/console/inbox/{filed.message_id}")).text)
        assert "more than 200 parts: the rest were not read" in page


async def test_markup_in_a_message_reaches_the_console_as_text(postgres, settings, dev_server, task_queue):
    """Already safe: a script in the subject line, the display name, the body and an attachment's
    name is shown as text on the Inbox and the message's page (templates autoescape), and HTML
    mail is read as text with its scripts dropped."""
    script = "<script>alert(1)</script>"
    raw = (f"From: \"{script}\" <xss@example.org>\r\nSubject: {script}\r\n"
           "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           f"--b\r\nContent-Type: text/plain\r\n\r\n{script}<img src=x onerror=alert(2)>\r\n"
           f"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"{script}.pdf\"\r\n\r\n"
           "%PDF\r\n--b--\r\n").encode()
    html_only = (b"From: html@example.org\r\nContent-Type: text/html\r\n\r\n"
                 b"<p>Hello</p><script>alert(3)</script><img src=x onerror=alert(4)>")
    async with inbox(postgres, settings, dev_server, task_queue, "attack_markup") as (http, file):
        filed, read = await file(raw), await file(html_only)
        for url in ("/console/inbox", f"/console/inbox/{filed.message_id}", f"/console/inbox/{read.message_id}"):
            page = (await http.get(url)).text
            assert "<script>alert" not in page and "<img src=x" not in page and "alert(3)" not in page, url
        assert html.escape(script) + ".pdf" in (await http.get(f"/console/inbox/{filed.message_id}")).text


async def test_unreadable_repeated_and_reused_mail_is_kept_once_each(postgres, settings, dev_server, task_queue):
    """Already safe: a message with no headers or body, one nested past the parser's depth, and one
    in a charset nobody knows are each kept and shown with a note; the same message delivered twice
    is one message; a different message reusing a Message-ID neither replaces nor hides the first,
    and both pages say the id is shared."""
    message_id = f"<{uuid.uuid4().hex}@example.org>".encode()
    nested = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(3000))
    async with inbox(postgres, settings, dev_server, task_queue, "attack_kept") as (http, file):
        empty = await file(b"")
        deep = await file(b"From: deep@example.org\r\n" + nested)
        unknown = await file(b"From: x@example.org\r\nSubject: =?x-martian?q?hi?=\r\n"
                             b"Content-Type: text/plain; charset=x-martian\r\n\r\nplease delete my data \xff\r\n")
        for filed, note in ((empty, "no usable sender address"), (deep, "the message could not be read"),
                            (unknown, "please delete my data")):
            page = await http.get(f"/console/inbox/{filed.message_id}")
            assert page.status_code == 200 and note in html.unescape(page.text), note
        first = b"From: ada@example.org\r\nMessage-ID: " + message_id + b"\r\nSubject: erase\r\n\r\nErase my data.\r\n"
        reuse = b"From: eve@example.org\r\nMessage-ID: " + message_id + b"\r\nSubject: never mind\r\n\r\nIgnore it.\r\n"
        kept, again, other = await file(first), await file(first, source="sink"), await file(reuse)
        assert (kept.created, again.created, again.message_id, other.created) == (True, False, kept.message_id, True)
        for filed in (kept, other):
            page = (await http.get(f"/console/inbox/{filed.message_id}")).text
            assert "Another stored message has the same Message-ID but different content." in page
        listing = (await http.get("/console/inbox")).text
        assert kept.message_id in listing and other.message_id in listing
