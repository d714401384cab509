"""The console's Inbox in a real browser (Debian's Chromium): every button (Open the request,
Attach, Dismiss) pressed by each role (agent, compliance, admin), with what they then see. Same setup as tests/test_browser.py."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.support import unique_email
from tests.test_browser import CHROMIUM, open_request, shots, signed_in, site  # noqa: F401
from tests.test_mailbox_console import filed, raw_mail

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


async def test_every_inbox_button_for_each_role(browser, site, pool, settings, shots):  # noqa: F811
    for role in ("agent", "compliance", "admin"):  # every role sees the same inbox: one site for all
        await press_every_inbox_button(role, browser, site, pool, settings, shots)


async def press_every_inbox_button(role, browser, site, pool, settings, shots):  # noqa: F811
    sender = unique_email("browser")
    convert = await filed(settings, pool, raw_mail(sender, "Bitte löschen Sie meine Daten.", subject="Löschung"))
    attach = await filed(settings, pool, raw_mail(unique_email("follow"), "A follow-up to my request."))
    dismiss = await filed(settings, pool, raw_mail(unique_email("ad"), "Cheap watches!", subject="Offer"))
    existing = await open_request(site, pool)

    page = await signed_in(browser, site, pool, role, "/console/inbox")
    await expect(page.locator(f'tr[data-message-id="{convert}"]')).to_contain_text("erasure · German")
    await shots(page, f"{role}-inbox")

    # Turn into a request: the suggestion is preselected, staff correct nothing but the name.
    await page.locator(f'tr[data-message-id="{convert}"] a').click()
    await expect(page.get_by_label("Subject's e-mail address")).to_have_value(sender)
    await expect(page.locator('input[name="type"][value="erasure"]')).to_be_checked()
    await page.get_by_label("Subject's name (optional)").fill("Grete")
    await shots(page, f"{role}-message")
    await page.get_by_role("button", name="Open the request").click()
    await expect(page).to_have_url(re.compile(r"/console/requests/[0-9a-f-]{36}$"))
    await expect(page.locator("body")).to_contain_text(sender)
    converted = await pool.fetchrow("SELECT status, request_id::text FROM mailbox_messages WHERE id = $1", convert)
    assert dict(converted) == {"status": "converted", "request_id": page.url.rsplit("/", 1)[1]}
    await shots(page, f"{role}-request")

    # Attach a follow-up to the existing request.
    await page.goto(f"{site}/console/inbox/{attach}")
    await page.get_by_label("Request id").fill(existing)
    await page.get_by_role("button", name="Attach").click()
    await expect(page).to_have_url(f"{site}/console/requests/{existing}")
    assert await pool.fetchval("SELECT request_id::text FROM mailbox_messages WHERE id = $1", attach) == existing

    # Dismiss: first without a reason (refused, said beside the field), then with one.
    await page.goto(f"{site}/console/inbox/{dismiss}")
    await page.get_by_role("button", name="Dismiss: not a request").click()
    await expect(page.locator("#reason-error")).to_contain_text("Say why")
    await page.get_by_label("Reason").fill("advertising")
    await page.get_by_role("button", name="Dismiss: not a request").click()
    await expect(page).to_have_url(f"{site}/console/inbox")
    assert await pool.fetchval("SELECT status FROM mailbox_messages WHERE id = $1", dismiss) == "dismissed"
    for gone in (convert, attach, dismiss):
        await expect(page.locator(f'tr[data-message-id="{gone}"]')).to_have_count(0)
    await shots(page, f"{role}-inbox-after")
    await page.context.close()
