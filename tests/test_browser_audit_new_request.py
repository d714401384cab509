"""The new request form's controls no other browser test presses, pressed in a real browser
(Debian's Chromium), one type's details by each role: an agent opens a rectification (the correct
name, another correction, the customer number, received by post at a time of its own), compliance
a restriction on a ground under another regime and country, an admin an objection they attested,
and an agent an appeal of a refused request by its reference (it takes that request's regime,
whatever the Regime select says, and its objection's scope, left unchosen). Each is then the
request page the user sees, and the row as stored. Same setup as tests/test_browser.py."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect

from api.read_models.event_words import scope_words
from dsrflow.domain.references import short_reference
from tests.support import live_client, staff_headers, unique_email
from tests.test_browser import CHROMIUM, open_request, signed_in, site  # noqa: F401 (fixtures)
from tests.test_browser_actions import SLOW, systems_site  # noqa: F401 (fixture)
from tests.test_browser_console import UUID

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
STORED = "SELECT request_type, channel, regime, country, customer_id, details, received_at FROM dsr_requests WHERE id = $1"


async def opened(page: Page, heading: str) -> str:
    """Press "Open the request": the new request's page, its id."""
    await page.get_by_role("button", name="Open the request").click()
    await expect(page).to_have_url(re.compile(rf"/console/requests/{UUID}$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    return page.url.rsplit("/", 1)[1]


async def test_an_agent_opens_a_rectification_received_by_post(browser, systems_site, pool):  # noqa: F811
    url = systems_site
    zone = ZoneInfo("Europe/Brussels")
    received = (datetime.now(zone) - timedelta(days=2)).replace(hour=9, minute=30, second=0, microsecond=0)
    page = await signed_in(browser, url, pool, "agent", "/console/requests/new")
    await page.get_by_role("radio", name=re.compile("^Rectification")).check()
    corrections = page.locator("#corrections")
    await expect(corrections).to_be_visible()
    await page.get_by_label("Subject's e-mail address").fill("ada@example.com")
    await page.get_by_label("Customer id (optional)").fill("C-1042")
    await corrections.get_by_label("The correct name").fill("Ada King")
    await corrections.get_by_label("Other corrections").fill("phone: +32 470 12 34 56")
    await page.get_by_label("Received by").select_option("post")
    await page.get_by_label("Received at (optional)").fill(received.strftime("%Y-%m-%dT%H:%M"))
    rid = await opened(page, "Rectification request")

    await expect(page.locator("#summary")).to_contain_text("by post, opened by staff")
    await expect(page.locator("#live")).to_contain_text("customer C-1042")
    await expect(page.locator("#live")).to_contain_text("name → “Ada King”; phone → “+32 470 12 34 56”")
    await expect(page.locator("#status")).to_contain_text("awaiting verification", timeout=SLOW)
    row = await pool.fetchrow(STORED, rid)
    assert (row["request_type"], row["channel"], row["customer_id"]) == ("rectification", "post", "C-1042")
    assert row["details"]["corrections"] == {"name": "Ada King", "phone": "+32 470 12 34 56"}
    assert row["received_at"] == received


async def test_compliance_opens_a_restriction_under_another_regime(browser, site, pool):  # noqa: F811
    page = await signed_in(browser, site, pool, "compliance", "/console/requests/new")
    await page.get_by_role("radio", name=re.compile("^Restriction")).check()
    grounds = page.locator("#restriction_grounds")
    await expect(grounds).to_be_visible()
    await expect(page.locator("#corrections")).to_be_hidden()
    await page.get_by_label("Subject's e-mail address").fill(unique_email("audit.restrict"))
    await grounds.get_by_label("The accuracy of the data is contested").check()
    await page.get_by_label("Regime").select_option(label="UK GDPR")
    await page.get_by_label("Country (optional)").select_option(label="United Kingdom")  # named, not a code to type
    rid = await opened(page, "Restriction request")

    await expect(page.locator("#summary")).to_contain_text("UK GDPR / United Kingdom")
    await expect(page.locator("#live")).to_contain_text("accuracy contested (Art. 18(1)(a) UK GDPR)")
    row = await pool.fetchrow(STORED, rid)
    assert (row["request_type"], row["regime"], row["country"]) == ("restriction", "uk_gdpr", "GB")
    assert row["details"]["restriction_grounds"] == ["accuracy_contested"]


async def test_an_admin_opens_an_objection_they_attested(browser, site, pool):  # noqa: F811
    email = unique_email("audit.object")
    page = await signed_in(browser, site, pool, "admin", "/console/requests/new")
    await page.get_by_role("radio", name="Objection to processing").check()
    scope = page.locator("#objection_scope")
    await expect(scope).to_be_visible()
    await page.get_by_label("Subject's e-mail address").fill(email)
    await page.get_by_label("Subject's name (optional)").fill("Jan Peeters")
    await scope.get_by_label("Direct marketing (newsletters, offers)").check()
    await page.get_by_label("I have authenticated the subject").check()
    rid = await opened(page, "Objection request")

    await expect(page.locator("#live")).to_contain_text(f"{email} · Jan Peeters")
    await expect(page.locator("#live")).to_contain_text("attested by browser admin")
    await expect(page.locator("#status")).to_contain_text("completed", timeout=SLOW)  # no system here to ask
    row = await pool.fetchrow(STORED, rid)
    assert (row["request_type"], row["details"]["objection_scope"]) == ("objection", "direct_marketing")


async def test_an_agent_opens_an_appeal_of_a_refused_request_by_its_reference(browser, site, pool):  # noqa: F811
    """The refused request was an objection to profiling: the agent chooses no scope (the hint
    says to leave the type's details empty), and the appeal objects to what that request did."""
    email = unique_email("audit.appeal")
    refused = await open_request(site, pool, type="objection", objection_scope="profiling", regime="vcdpa",
                                 country="US", subject={"email": email})
    async with live_client(base_url=site, timeout=30) as http:
        r = await http.post(f"/v1/requests/{refused}/deny", headers=await staff_headers(pool, "compliance"), json={
            "reason_code": "excessive", "explanation": "The fourth identical request this month"})
    assert r.status_code == 200, r.text

    page = await signed_in(browser, site, pool, "agent", "/console/requests/new")
    await page.get_by_role("radio", name="Objection to processing").check()
    await expect(page.locator("#objection_scope")).to_be_visible()  # left unchosen: the appeal takes it
    await page.get_by_label("Subject's e-mail address").fill(email)
    await expect(page.get_by_label("Regime")).to_have_value("gdpr")  # left as it is: the appeal decides
    appeal_of = page.get_by_label("Appeal of or complaint about (optional)")
    await expect(appeal_of).to_have_accessible_description(re.compile(
        r"Leave the details for its type empty: it asks for what that request asked"))
    await appeal_of.fill(short_reference(refused).lower())
    rid = await opened(page, "Objection request")

    await expect(page.locator("#summary")).to_contain_text("VCDPA (Virginia) /")
    await expect(page.locator("#live")).to_contain_text(scope_words("profiling", "vcdpa"))
    # The details name the appealed request by its reference, and lead to it.
    await expect(page.locator("#appeal-of").get_by_role("link", name=short_reference(refused))).to_have_attribute(
        "href", f"/console/requests/{refused}")
    row = await pool.fetchrow(STORED, rid)
    assert row["details"] == {"appeal_of": refused, "objection_scope": "profiling"} and row["regime"] == "vcdpa"
    # The refused request's page lists the appeal among the subject's other requests, and leads to it.
    await page.goto(f"{site}/console/requests/{refused}")
    await page.locator("#other-requests").get_by_role("link", name=rid[:8]).click()
    await expect(page).to_have_url(f"{site}/console/requests/{rid}")
