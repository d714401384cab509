"""Red team of the staff tokens' bound and expiry (api/staff_opens.py, api/console/inbox.py,
api/console/tokens.py): doors around the bound of requests a token opens, and what a token past
its expiry still reaches. In-process (the app over ASGI; no worker)."""

from __future__ import annotations

import re

from dsrflow.stores.staff_tokens import create_token
from tests.ratelimit_support import app_clients, stored_for, unique_ip
from tests.support import CSRF_FIELD, unique_email
from tests.test_mailbox_console import filed, raw_mail

ONE_AN_HOUR = {"rate_staff_opens_per_token": "1/hour"}


async def _signed_in(browser, pool, role: str, label: str) -> str:
    form = await browser.get("/console/sign-in")
    signed = await browser.post("/console/sign-in", data={"token": await create_token(pool, role, label),
                                                          "csrf_token": CSRF_FIELD.search(form.text).group(1)})
    assert signed.status_code == 303, signed.text
    return CSRF_FIELD.search((await browser.get("/console/")).text).group(1)


async def test_an_inbox_message_converted_into_a_request_counts_against_the_bound(settings, pool, dev_server,
                                                                                  task_queue):
    """The Inbox's convert takes the address as typed, and a sender's is only what the From header
    says: a stolen token past its bound converted each message mailed to the inbox (a forged From
    naming its victim, or any address typed) into a request mailing them from our address. Past the
    bound it is refused as the New request form is, nothing stored, the message still new; within
    it, the same message converts."""
    async with app_clients(settings, dev_server.client, task_queue, **ONE_AN_HOUR) as call_from:
        browser = call_from(unique_ip())
        csrf = await _signed_in(browser, pool, "agent", "redteam inbox convert")
        victim = unique_email("redteam-victim")
        message = await filed(settings, pool, raw_mail(victim, "Please delete my data."))  # From: forged
        page = await browser.get("/console/requests/new")
        submission = re.search(r'name="submission" value="([^"]+)"', page.text).group(1)
        opened = await browser.post("/console/requests", data={
            "csrf_token": csrf, "submission": submission, "channel": "email", "type": "access",
            "email": unique_email("redteam-first"), "identity_attested": "true"})
        assert opened.status_code == 303, opened.text[:500]

        for typed in (unique_email("redteam-stranger"), victim):
            refused = await browser.post(f"/console/inbox/{message}/convert", data={
                "csrf_token": csrf, "type": "erasure", "email": typed, "language": "en", "regime": "gdpr"})
            assert refused.status_code == 429, refused.text[:500]
            assert "DSRFLOW_RATE_STAFF_OPENS_PER_TOKEN" in refused.text and "Nothing was stored" in refused.text
            assert await stored_for(pool, typed) == 0
        assert await pool.fetchval("SELECT status FROM mailbox_messages WHERE id = $1", message) == "new"

        colleague = call_from(unique_ip())
        theirs = await _signed_in(colleague, pool, "agent", "redteam inbox colleague")
        converted = await colleague.post(f"/console/inbox/{message}/convert", data={
            "csrf_token": theirs, "type": "erasure", "email": victim, "language": "en", "regime": "gdpr"})
        assert converted.status_code == 303, converted.text[:500]
        assert await stored_for(pool, victim) == 1
