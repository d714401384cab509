"""Attacks on the privacy mailbox by a hostile sender (docs/mailbox.md, "Hostile mail"): each
files a message the way the IMAP reader and the SMTP sink do (activities/mailbox_intake.py
file_message) and looks at what the console shows. The messages go into a database of their own
per test, so a poison message cannot reach another test's Inbox."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx

from activities.mailbox_intake import Filed, file_message
from dsrflow.crypto.keys import load_secret_key
from policy.mailbox import load_mailbox_policy
from tests.conftest import database_pool
from tests.support import api_client, console_sign_in


@contextlib.asynccontextmanager
async def inbox(postgres, settings, dev_server, task_queue, name: str) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    """An agent's console on a database of its own: (client, file) where `await file(raw,
    source=...)` files a message as the reader ("imap") or the sink ("sink") does."""
    async with database_pool(postgres, name) as (url, pool):
        own = settings.model_copy(update={"database_url": url})

        async def file(raw: bytes, source: str = "imap") -> Filed:
            done = await file_message(pool, load_secret_key(own), load_mailbox_policy(), raw,
                                      arrived_at=datetime.now(UTC), source=source)
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
