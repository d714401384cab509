"""Request-page and inbox controls no other browser test presses for some role that sees them,
pressed in a real browser (Debian's Chromium): the letters' frames (a letter to the subject and a
staff alert, opened by each role, and the links inside a letter), "Ask … again" on a deferred
erasure by an admin and "Record as erased" by compliance (tests/test_browser_deferred.py has it
the other way round), an inbox message's link to the request it became, and "Attach" with a
reference nobody has, by each role. Same setup as tests/test_browser.py."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.async_api import Page, expect

from dsrflow.domain.references import short_reference
from schemas.staff_tokens import ROLES
from tests.support import eventually, unique_email
from tests.test_approval import approval_settings  # noqa: F401 (fixture: access waits for approval)
from tests.test_browser import CHROMIUM, open_request, signed_in, site  # noqa: F401 (fixtures)
from tests.test_browser_actions import SLOW, approval_site  # noqa: F401 (fixture)
from tests.test_browser_deferred import _failed_processor
from tests.test_mailbox_console import filed, raw_mail

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


def letter(page: Page, section: str, purpose: str):
    """A letter's <details> in the page's list `section` (#letters or #staff-alerts)."""
    return page.locator(f"{section} details", has=page.locator("summary", has_text=re.compile(rf"^\s*{purpose}:")))


async def test_each_role_reads_a_letter_and_a_staff_alert_and_follows_a_letters_link(
        browser, approval_site, pool):  # noqa: F811
    """The stored copy withholds the code's link: before, it was still a link (to `[withheld]`,
    which the frame opened as a console address: "Letter not found"), and the letter's own links
    (the portal's, "Make a new privacy request") opened inside the sandboxed frame, which the
    portal refuses to be shown in. Now a withheld link is no link, and the others open a tab."""
    url = approval_site
    unverified = await open_request(url, pool)
    held = await open_request(url, pool, type="access", identity_attested=True)  # waits for compliance: an alert
    for role in ROLES:
        page = await signed_in(browser, url, pool, role, f"/console/requests/{unverified}")
        await expect(page.locator("#letters-title")).to_have_text("Letters to the subject (2)", timeout=SLOW)
        verification = letter(page, "#letters", "verification code and link")
        await verification.locator("summary").click()
        body = verification.frame_locator("iframe").locator("body")
        await expect(body).to_contain_text("[withheld]")
        await expect(body.locator('a[href="[withheld]"]')).to_have_count(0)
        await expect(body.get_by_role("link", name="[withheld]")).to_have_count(0)  # no link: plain words
        async with page.context.expect_page() as opened:
            await body.locator("a[href*='/portal?lang=']").first.click()
        portal = await opened.value
        await expect(portal).to_have_url(f"{url}/portal?lang=en")
        await expect(portal.get_by_role("heading", level=1)).to_have_text("Ask about your personal data")
        await portal.close()
        await expect(page).to_have_url(f"{url}/console/requests/{unverified}")  # the console stays put

        await page.goto(f"{url}/console/requests/{held}")
        await expect(page.locator("#status")).to_contain_text("awaiting approval", timeout=SLOW)
        alert = letter(page, "#staff-alerts", "alert to staff")
        await expect(alert).to_have_count(1, timeout=SLOW)
        await alert.locator("summary").click()
        alert_body = alert.frame_locator("iframe").locator("body")
        await expect(alert_body).to_contain_text(f"Request {held} needs attention from staff.")
        await expect(alert_body).to_contain_text("This alert deliberately contains no personal data")
        await page.context.close()


async def test_an_admin_asks_a_processor_again_and_compliance_records_an_erasure(browser, site, pool):  # noqa: F811
    rid = await open_request(site, pool)
    await _failed_processor(pool, rid, "email_marketing")
    await _failed_processor(pool, rid, "surveys")

    admin = await signed_in(browser, site, pool, "admin", f"/console/requests/{rid}")
    panel = admin.locator("#deferred")
    await expect(panel.locator("tr[data-system=surveys]")).to_contain_text("1 not erased by the processor")
    await admin.get_by_role("button", name="Ask surveys again").click()
    await expect(admin).to_have_url(re.compile(rf"/console/requests/{rid}\?deferred_done=\w+&deferred_done_sig=\w+#deferred$"))
    await expect(panel.locator(".flash")).to_contain_text("asked again")
    await expect(panel.locator("tr[data-system=surveys]")).to_contain_text("2 times")
    await expect(admin.get_by_role("button", name="Ask surveys again")).to_have_count(0)
    await expect(admin.locator(".timeline")).to_contain_text(
        "Processor asked again to carry out the deferred erasure (surveys)")

    async def asked_again() -> bool:
        return await pool.fetchval("SELECT attempt = 2 AND failed_at IS NULL FROM deferred_erasures "
                                   "WHERE request_id = $1 AND system = 'surveys'", rid)

    await eventually(asked_again)

    officer = await signed_in(browser, site, pool, "compliance", f"/console/requests/{rid}")
    note = "Removed from the mailing platform by hand; its support confirmed on 4 December."
    await officer.get_by_label("How email_marketing's erasure was carried out").fill(note)
    await officer.locator("#deferred-settle-email_marketing").click()
    await expect(officer.locator("#deferred .flash")).to_contain_text("Recorded as erased by other means")
    await expect(officer.locator("#deferred tr[data-system=email_marketing]")).to_contain_text(
        "1 recorded by staff as erased by other means")
    await expect(officer.locator("#notes .note-body")).to_contain_text(note)
    await expect(officer.locator(".timeline")).to_contain_text(
        "Deferred erasure recorded as done by other means (email_marketing)")
    await expect(officer.locator("#deferred-settle-email_marketing")).to_have_count(0)


async def test_each_role_follows_a_decided_messages_link_and_attaches_to_no_request(
        browser, site, pool, settings):  # noqa: F811
    for role in ROLES:
        existing = await open_request(site, pool)
        follow_up = await filed(settings, pool, raw_mail(unique_email("audit.follow"), "About my request."))
        page = await signed_in(browser, site, pool, role, f"/console/inbox/{follow_up}")

        nobody = short_reference(str(uuid.uuid4()))
        await page.get_by_label("Request id").fill(nobody)
        await page.get_by_role("button", name="Attach").click()
        await expect(page.locator("#request_id-error")).to_contain_text("Enter the reference")
        await expect(page.get_by_label("Request id")).to_have_value(nobody)
        await expect(page.get_by_label("Request id")).to_have_attribute("aria-invalid", "true")
        assert await pool.fetchval("SELECT status FROM mailbox_messages WHERE id = $1", follow_up) == "new"

        await page.get_by_label("Request id").fill(short_reference(existing))
        await page.get_by_role("button", name="Attach").click()
        await expect(page).to_have_url(f"{site}/console/requests/{existing}")

        # The message's page again (from a colleague's link, say): it names the request, and leads there.
        await page.goto(f"{site}/console/inbox/{follow_up}")
        await expect(page.get_by_role("button", name="Attach")).to_have_count(0)  # decided: nothing to press
        await page.get_by_role("link", name=f"request {existing}").click()
        await expect(page).to_have_url(f"{site}/console/requests/{existing}")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Erasure request")
        await page.context.close()


async def test_each_role_turns_a_message_into_a_request_of_a_type_with_details(browser, site, pool, settings):  # noqa: F811
    """Sent first without the type's details: the refusal's summary leads to the field, which
    shows its message; once filled in, the request opens with them. Before, the details sat in a
    closed "Details for some types" box: choosing the type showed nothing to fill in, and the
    field's message was hidden in that box."""
    for role, kind, part, fill, stored in (
            ("agent", "restriction", "#restriction_grounds", "The accuracy of the data is contested",
             {"restriction_grounds": ["accuracy_contested"]}),
            ("compliance", "objection", "#objection_scope", "Profiling", {"objection_scope": "profiling"}),
            ("admin", "objection", "#objection_scope", "Direct marketing (newsletters, offers)",
             {"objection_scope": "direct_marketing"})):
        message = await filed(settings, pool, raw_mail(unique_email("audit.convert"), "Please look at my data."))
        page = await signed_in(browser, site, pool, role, f"/console/inbox/{message}")
        await page.locator(f"input[name=type][value={kind}]").check()
        details = page.locator(part)
        await expect(details).to_be_visible()  # the chosen type's details, to fill in
        await page.get_by_role("button", name="Open the request").click()
        summary = page.locator(".error-summary")
        await expect(summary.get_by_role("link")).to_have_count(1)
        await summary.get_by_role("link").click()
        await expect(details).to_be_visible()
        await expect(details.locator(".error")).to_be_visible()
        await expect(page.locator(f"input[name=type][value={kind}]")).to_be_checked()  # kept
        if role == "admin":  # a correction first: this site's policy has no system to correct it in
            await page.locator("input[name=type][value=rectification]").check()
            corrections = page.locator("#corrections")
            await corrections.get_by_label("The correct name").fill("Grete Maes")
            await page.get_by_role("button", name="Open the request").click()
            await expect(corrections.locator(".error")).to_contain_text("nothing can be corrected on request here")
            await expect(details).to_be_hidden()
            await page.locator(f"input[name=type][value={kind}]").check()
        await details.get_by_label(fill).check()
        await page.get_by_role("button", name="Open the request").click()
        await expect(page).to_have_url(re.compile(r"/console/requests/[0-9a-f-]{36}$"))
        await expect(page.get_by_role("heading", level=1)).to_have_text(f"{kind.capitalize()} request")
        rid = page.url.rsplit("/", 1)[1]
        details_stored = await pool.fetchval("SELECT details FROM dsr_requests WHERE id = $1", rid)
        assert {k: details_stored[k] for k in stored} == stored
        assert await pool.fetchval("SELECT status FROM mailbox_messages WHERE id = $1", message) == "converted"
        await page.context.close()
