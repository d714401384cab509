"""Text written to push the console out of shape: a note and a token's label with no space to
wrap at, and an e-mail's subject in the Inbox (docs/security.md, "Team work under load and in
bulk"). Same setup as tests/test_browser.py."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from api.auth import create_token
from tests.support import live_client, unique_email
from tests.test_browser import (  # noqa: F401 (fixtures)
    CHROMIUM,
    open_request,
    shots,
    signed_in,
    site,
)
from tests.test_mailbox_console import filed, raw_mail

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


async def sideways(page) -> str | None:
    """How far the page scrolls sideways, or None: it does not."""
    width, seen = await page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    return f"{width} px wide in {seen}" if width > seen else None


async def test_unbroken_text_keeps_the_console_in_shape(browser, site, pool, settings, shots):  # noqa: F811
    """An agent whose token's label (200 characters) and note (4,000) hold no space takes a request
    and notes on it; a processor's answer (1,000) has none either. Before, the compliance officer who opened it got a page 48,000 px wide: the
    actions, the timeline and the note's form off to the side of a line of Ns; the queue was
    2,800 px. Anyone outside mailing the privacy address a subject of one 900-character word made
    the Inbox 10,000 px. Now the text wraps within the page: the request's, the queue's, the
    Inbox's and the message's."""
    rid = await open_request(site, pool)
    labelled = await create_token(pool, "agent", "L" * 200)
    async with live_client(base_url=site, timeout=30) as http:
        agent = {"Authorization": f"Bearer {labelled}"}
        assert (await http.post(f"/v1/requests/{rid}/notes", headers=agent, json={"note": "N" * 4000})).status_code == 201
        assert (await http.put(f"/v1/requests/{rid}/assignee", headers=agent, json={"assignee": "me"})).status_code == 200
    # A system's answer as a processor worded it (an OpenDSR error, a connector's failure): no space either.
    await pool.execute("INSERT INTO system_tasks (request_id, system, action, status, message) "
                       "VALUES ($1, 'crm', 'erase', 'needs_attention', $2)", rid, "M" * 1000)
    page = await signed_in(browser, site, pool, "compliance", f"/console/requests/{rid}")
    await expect(page.locator("#notes .note-body")).to_have_count(1)
    await shots(page, "request")
    assert await sideways(page) is None, await sideways(page)
    await page.goto(f"{site}/v1/requests/{rid}/evidence.html")  # the evidence pack keeps the note too
    await expect(page.get_by_text("N" * 4000)).to_have_count(1)
    assert await sideways(page) is None, await sideways(page)
    taker = await pool.fetchval("SELECT assignee::text FROM request_assignments WHERE request_id = $1", rid)
    await page.goto(f"{site}/console/?assignee={taker}")
    await expect(page.locator("tr[data-request-id]")).to_have_count(1)
    assert await sideways(page) is None, await sideways(page)

    await filed(settings, pool, raw_mail(unique_email("wide"), "Delete my data.", subject="S" * 900))
    await page.goto(f"{site}/console/inbox")
    await expect(page.get_by_role("link", name="S" * 900)).to_have_count(1)
    assert await sideways(page) is None, await sideways(page)
    await page.get_by_role("link", name="S" * 900).click()  # the message's own page
    await expect(page.get_by_role("button", name="Dismiss")).to_have_count(1)
    assert await sideways(page) is None, await sideways(page)

