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


async def test_an_inbox_message_converted_to_another_address_counts_against_the_bound(settings, pool, dev_server,
                                                                                      task_queue):
    """The Inbox's convert takes the address as typed: a stolen token past its bound converted
    each message mailed to the inbox into a request mailing a stranger. To another address it is
    refused past the bound as the New request form is (nothing stored); to the sender it still
    answers the mail."""
    async with app_clients(settings, dev_server.client, task_queue, **ONE_AN_HOUR) as call_from:
        browser = call_from(unique_ip())
        csrf = await _signed_in(browser, pool, "agent", "redteam inbox convert")
        page = await browser.get("/console/requests/new")
        submission = re.search(r'name="submission" value="([^"]+)"', page.text).group(1)
        opened = await browser.post("/console/requests", data={
            "csrf_token": csrf, "submission": submission, "channel": "email", "type": "access",
            "email": unique_email("redteam-first"), "identity_attested": "true"})
        assert opened.status_code == 303, opened.text[:500]

        stranger = unique_email("redteam-stranger")
        sender = unique_email("redteam-sender")
        to_stranger = await filed(settings, pool, raw_mail(sender, "Please delete my data."))
        refused = await browser.post(f"/console/inbox/{to_stranger}/convert", data={
            "csrf_token": csrf, "type": "erasure", "email": stranger, "language": "en", "regime": "gdpr"})
        assert refused.status_code == 429, refused.text[:500]
        assert "DSRFLOW_RATE_STAFF_OPENS_PER_TOKEN" in refused.text and "Nothing was stored" in refused.text
        assert await stored_for(pool, stranger) == 0
        assert await pool.fetchval("SELECT status FROM mailbox_messages WHERE id = $1", to_stranger) == "new"

        answered = await browser.post(f"/console/inbox/{to_stranger}/convert", data={
            "csrf_token": csrf, "type": "erasure", "email": sender, "language": "en", "regime": "gdpr"})
        assert answered.status_code == 303, answered.text[:500]
        assert await stored_for(pool, sender) == 1
