"""The console's links and the buttons outside a request's actions, in a real browser (Debian's
Chromium), pressed by each role that sees them: the header's Queue, Inbox, New request and
Dashboard links and its "Sign out"; the queue's "Next page"; the Evidence pack link; the new
request form's "Open the request"; "Approve" for a rectification and an attested erasure (the
policy's default gate). Same setup as tests/test_browser.py."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect

from api.console import queue
from api.csrf import SESSION_COOKIE
from dsrflow.crypto.hashing import token_hash
from dsrflow.domain.references import short_reference
from tests.fanout_stack import fanout_stack
from tests.support import wait_for_letter
from tests.test_browser import (  # noqa: F401 (fixtures)
    CHROMIUM,
    open_request,
    shots,
    signed_in,
    site,
)
from tests.test_browser_actions import SLOW, letters, offered, press
from workers.dsr_worker import build_worker

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
async def gated_site(postgres, settings, pool, dev_server, tmp_path) -> AsyncIterator[str]:
    """The demo systems behind the site, under the policy's default gate: rectifications and
    attested erasures wait for compliance's approval before any system is touched."""
    gate = {"approval_required_for": ["rectification", "attested_erasure"]}
    async with (fanout_stack(postgres, settings, dev_server.client, tmp_path, policy_updates=gate) as stack,
                build_worker(dev_server.client, stack.settings, pool)):
        yield stack.api_url


async def test_each_role_follows_the_header_links_and_signs_out(browser, site, pool, monkeypatch, shots):  # noqa: F811
    monkeypatch.setattr(queue, "PAGE_SIZE", 1)  # two requests make two pages
    email = f"pages.{uuid.uuid4().hex[:8]}@example.com"
    sooner, later = [await open_request(site, pool, days_ago=d, subject={"email": email}) for d in (9, 2)]
    for role in ("agent", "compliance", "admin"):
        page = await signed_in(browser, site, pool, role, "/console/")
        nav = page.get_by_role("navigation", name="Console")
        await nav.get_by_role("link", name="Inbox").click()
        await expect(page).to_have_url(f"{site}/console/inbox")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")
        await nav.get_by_role("link", name="New request").click()
        await expect(page).to_have_url(f"{site}/console/requests/new")
        await expect(page.get_by_role("heading", level=1)).to_have_text("New request")
        if role == "agent":
            await expect(nav.get_by_role("link", name="Dashboard")).to_have_count(0)
        else:
            await nav.get_by_role("link", name="Dashboard").click()
            await expect(page).to_have_url(f"{site}/console/dashboard")
            await expect(page.locator("figure.chart svg")).to_have_count(4)
        await nav.get_by_role("link", name="Queue").click()
        await expect(page).to_have_url(f"{site}/console/")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Queue")

        if role == "agent":  # the queue's pages are the same for every role
            await page.get_by_label("Subject's e-mail or customer number").fill(email)
            await page.get_by_role("button", name="Show").click()
            rows = page.locator("tr[data-request-id]")
            await expect(rows).to_have_count(1)
            await expect(rows).to_have_attribute("data-request-id", sooner)
            await page.get_by_role("link", name="Next page").click()
            await expect(page).to_have_url(re.compile(r"cursor="))
            await expect(rows).to_have_count(1)
            await expect(rows).to_have_attribute("data-request-id", later)
            await expect(page.get_by_role("link", name="Next page")).to_have_count(0)
            await shots(page, "next-page")
        if role == "admin":  # compliance's is pressed in tests/test_browser.py
            await page.goto(f"{site}/console/requests/{later}")
            await page.get_by_role("link", name="Evidence pack").click()
            await expect(page).to_have_url(f"{site}/v1/requests/{later}/evidence.html")
            await expect(page.get_by_role("heading", level=1)).to_contain_text(short_reference(later))
            await expect(page.locator("#chain-result")).to_contain_text("linked into the hash chain")
            await shots(page, "evidence")
            await page.go_back()

        session = next(c["value"] for c in await page.context.cookies() if c["name"] == SESSION_COOKIE)
        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(f"{site}/console/sign-in")
        await expect(page.get_by_label("Staff token")).to_be_visible()
        ended = await pool.fetchval("SELECT ended_at FROM staff_sessions WHERE id_hash = $1", token_hash(session))
        assert ended is not None, f"{role}'s session is still live after Sign out"
        assert SESSION_COOKIE not in {c["name"] for c in await page.context.cookies()}
        await page.goto(f"{site}/console/requests/{sooner}")
        await expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
        await page.context.close()


async def test_agent_opens_a_request_on_the_new_request_form(browser, site, pool, mail_sink, shots):  # noqa: F811
    email = f"phoned.{uuid.uuid4().hex[:8]}@example.com"
    page = await signed_in(browser, site, pool, "agent", "/console/requests/new")
    await page.get_by_label("Access to your personal data").check()
    await page.get_by_label("Subject's e-mail address").fill(email)
    await page.get_by_label("Subject's name (optional)").fill("Lieve Peeters")
    await page.get_by_label("Received by").select_option("phone")
    await page.get_by_label("Language of the letters").select_option("nl")
    await shots(page, "form")
    await page.get_by_role("button", name="Open the request").click()

    await expect(page).to_have_url(re.compile(rf"/console/requests/{UUID}$"))
    rid = page.url.rsplit("/", 1)[1]
    await expect(page.get_by_role("heading", level=1)).to_have_text("Access request")
    await expect(page.locator("body")).to_contain_text(email)
    await expect(page.locator("#status")).to_contain_text("awaiting verification", timeout=SLOW)
    await shots(page, "request")
    row = await pool.fetchrow("SELECT request_type, channel, origin, language FROM dsr_requests WHERE id = $1", rid)
    assert dict(row) == {"request_type": "access", "channel": "phone", "origin": "staff", "language": "nl"}
    await wait_for_letter(mail_sink, rid, "verification")  # the subject is asked to confirm


async def test_compliance_approves_a_rectification_and_admin_an_attested_erasure(
        browser, gated_site, pool, shots):  # noqa: F811
    url = gated_site
    held = {"compliance": await open_request(url, pool, type="rectification", identity_attested=True,
                                             subject={"email": "ada@example.com"}, corrections={"name": "Ada King"}),
            "admin": await open_request(url, pool, identity_attested=True)}  # an erasure
    for role, rid in held.items():
        page = await signed_in(browser, url, pool, role, f"/console/requests/{rid}")
        await expect(page.locator("#status")).to_contain_text("awaiting approval", timeout=SLOW)
        await expect(page.locator("#tasks")).not_to_contain_text("needs attention")  # no system asked to change yet
        assert await offered(page) == {"approve", "deny", "cancel", "extend"}
        checked = "The corrections have" if role == "compliance" else "The request and the subject's identities have"
        await expect(page.locator('#live form[hx-post$="/approve"]')).to_contain_text(checked)
        await press(page, "approve", {"Note": f"Checked by {role}"}, flash="Release approved")
        await expect(page.locator(".timeline")).to_contain_text("Release approved")
        if role == "compliance":  # the systems are reached now: OpenDSR cannot rectify
            await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)
        else:
            await expect(page.locator("#status")).to_contain_text("completed", timeout=SLOW)
            await expect(letters(page)).to_contain_text("response", timeout=SLOW)
        await shots(page, f"{role}-approved")
        granted = await pool.fetchval(
            "SELECT data FROM audit_events WHERE request_id = $1 AND event_type = 'approval.granted'", rid)
        assert granted == {"note": f"Checked by {role}"}
        await page.context.close()
