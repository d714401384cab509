"""The team's buttons in a real browser, pressed by each role that sees them (agent, compliance,
admin): "Take it", "Assign" (to a colleague, then to nobody), "Add note", "Save view" and a saved
view's delete button; the subject's "Send me a new code" on the portal, before and after too many
wrong codes; the queue and the console's other pages on a 390 px
phone without sideways scrolling; the request form showing only the chosen type's details; the
deny form's ground left for the officer to choose. Same setup as tests/test_browser.py."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.async_api import expect

from api.auth import create_token
from tests.support import verification_code, wait_for_letter
from tests.test_browser import (  # noqa: F401 (fixtures)
    CHROMIUM,
    five_wrong_codes,
    open_request,
    shots,
    signed_in,
    site,
)
from tests.test_mailbox_console import filed, raw_mail

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


@pytest.mark.parametrize("role", ["agent", "compliance", "admin"])
async def test_each_role_takes_assigns_notes_and_saves_a_view(browser, site, pool, shots, role):  # noqa: F811 (fixtures)
    rid = await open_request(site, pool)
    colleague = f"Colleague {uuid.uuid4().hex[:6]}"
    await create_token(pool, "agent", colleague)
    page = await signed_in(browser, site, pool, role, f"/console/requests/{rid}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Erasure request")

    await page.get_by_role("button", name="Take it").click()
    await expect(page.locator("#assignee")).to_contain_text("(you)")
    await expect(page.get_by_role("button", name="Take it")).to_have_count(0)
    await page.get_by_label("Assign to").select_option(label=f"{colleague} (agent)")
    await page.get_by_role("button", name="Assign", exact=True).click()
    await expect(page.locator("#assignee")).to_contain_text(colleague)

    await page.get_by_label("New note").fill(f"Checked by {role}: the subject's second address is theirs too.")
    await page.get_by_role("button", name="Add note").click()
    await expect(page.locator("#notes .note-body")).to_have_text(f"Checked by {role}: the subject's second address is theirs too.")
    if role != "agent":
        timeline = page.locator(".timeline")
        await expect(timeline).to_contain_text("Internal note added")
        await expect(timeline).to_contain_text(f"by browser {role}")  # the token's label, not role:1234abcd
    await shots(page, "request")

    await page.get_by_role("link", name="Queue").click()
    await page.get_by_label("Assigned to").select_option(label=colleague)
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator("tr[data-request-id]")).to_have_count(1)
    await page.get_by_label("Save these filters as").fill(f"{colleague}'s work")
    await page.get_by_role("button", name="Save view").click()
    view = page.get_by_role("link", name=f"{colleague}'s work")
    await page.get_by_role("link", name="Unassigned").click()
    await expect(page.locator(f'tr[data-request-id="{rid}"]')).to_have_count(0)
    await view.click()
    await expect(page.locator(f'tr[data-request-id="{rid}"]')).to_have_count(1)
    await page.get_by_role("link", name="Mine").click()
    await expect(page.locator(f'tr[data-request-id="{rid}"]')).to_have_count(0)
    await page.get_by_role("button", name=f"Delete the view {colleague}'s work").click()
    await expect(page.get_by_role("link", name=f"{colleague}'s work")).to_have_count(0)

    # Assign to nobody: the request is unassigned again, and says so.
    await page.goto(f"{site}/console/requests/{rid}")
    await page.get_by_label("Assign to").select_option(label="nobody")
    await page.get_by_role("button", name="Assign", exact=True).click()
    await expect(page.locator("#team [role=status]")).to_have_text("The request is assigned to nobody now.")
    await expect(page.locator("#assignee")).to_have_text("Unassigned")
    assert await pool.fetchval("SELECT count(*) FROM request_assignments WHERE request_id = $1", rid) == 0
    if role != "agent":
        await expect(page.locator(".timeline")).to_contain_text("Assignment removed")


async def test_the_queue_fits_a_phone(browser, site, pool, shots):  # noqa: F811 (fixtures)
    await open_request(site, pool)
    page = await signed_in(browser, site, pool, "agent", "/console/")
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(page.locator("tr[data-request-id]").first).to_be_visible()
    await shots(page, "phone")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways: {width} px wide"


async def test_the_consoles_other_pages_fit_a_phone(browser, site, pool, settings, shots):  # noqa: F811 (fixtures)
    """A request's page (its Systems table), the evidence pack, the Inbox and a message, the
    dashboard and the Tokens page on a 390 px phone: the page never scrolls sideways (a wide table
    scrolls inside its own box), as the queue does not."""
    rid = await open_request(site, pool, type="access", identity_attested=True)
    message = await filed(settings, pool, raw_mail("Jean-Baptiste Dupont-Lefebvre <jean-baptiste.dupont-lefebvre@example.org>",
                                                   "Je souhaite que vous effaciez mes données.",
                                                   subject="Demande d'effacement de mes données personnelles"))
    page = await signed_in(browser, site, pool, "admin", f"/console/requests/{rid}")
    await page.set_viewport_size({"width": 390, "height": 844})
    wide = {}
    for path in (f"/console/requests/{rid}", f"/v1/requests/{rid}/evidence.html", "/console/inbox",
                 f"/console/inbox/{message}", "/console/dashboard", "/console/tokens"):
        await page.goto(f"{site}{path}")
        await shots(page, path.rsplit("/", 1)[-1].replace(".", "-"))
        width = await page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            wide[path] = width
    assert wide == {}, f"these pages scroll sideways on a 390 px phone: {wide}"


async def test_the_request_forms_show_only_the_chosen_types_details(browser, site, pool):  # noqa: F811 (fixtures)
    portal = await (await browser.new_context()).new_page()
    await portal.goto(f"{site}/portal")
    corrections = portal.locator("#corrections")
    await expect(corrections).to_be_hidden()
    await portal.locator("input[name=type][value=rectification]").check()
    await expect(corrections).to_be_visible()
    await expect(portal.locator("#objection_scope")).to_be_hidden()
    await portal.locator("input[name=type][value=erasure]").check()
    await expect(corrections).to_be_hidden()

    console = await signed_in(browser, site, pool, "agent", "/console/requests/new")
    await expect(console.locator("#restriction_grounds")).to_be_hidden()
    await console.locator("input[name=type][value=restriction]").check()
    await expect(console.locator("#restriction_grounds")).to_be_visible()


async def test_deny_waits_for_the_officer_to_choose_a_ground(browser, site, pool):  # noqa: F811 (fixtures)
    rid = await open_request(site, pool)
    page = await signed_in(browser, site, pool, "compliance", f"/console/requests/{rid}")
    await expect(page.get_by_label("Ground")).to_have_value("")
    await page.locator("#deny-explanation").fill("The request is manifestly unfounded: see our letter of May.")
    await page.get_by_role("button", name="Deny", exact=True).click()
    await expect(page.locator("#status")).to_contain_text("awaiting verification")  # the browser refused to send it


async def test_the_subject_asks_for_a_new_code(browser, site, pool, mail_sink, shots):  # noqa: F811 (fixtures)
    subject = await (await browser.new_context()).new_page()
    await subject.goto(f"{site}/portal?lang=nl")
    await subject.locator("input[name=type][value=access]").check()
    await subject.locator("#email").fill(f"resend.{uuid.uuid4().hex[:8]}@example.com")
    await subject.locator("form[action='/portal/requests'] button[type=submit]").click()
    rid = re.search(r"/portal/requests/([0-9a-f-]{36})/verify", subject.url).group(1)
    code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
    await subject.get_by_role("button", name="Stuur mij een nieuwe code").click()
    await expect(subject.get_by_role("status")).to_contain_text("We hebben u een nieuwe code en link gestuurd.")
    await shots(subject, "resent")
    # Five wrong codes: the page keeps no code form, says the e-mail's link still works, and
    # offers the button for a new code, which works.
    await five_wrong_codes(subject, code, "Bevestigen", ("4 pogingen", "3 pogingen", "2 pogingen", "1 poging"),
                           "U hebt nog %s.")
    await expect(subject.get_by_role("alert")).to_contain_text("De link in onze laatste e-mail werkt nog wel")
    await expect(subject.get_by_role("alert")).to_contain_text("Of vraag hieronder een nieuwe code aan.")
    await expect(subject.locator("#code")).to_have_count(0)
    await shots(subject, "locked")
    await subject.get_by_role("button", name="Stuur mij een nieuwe code").click()
    await expect(subject.get_by_role("status")).to_contain_text("We hebben u een nieuwe code en link gestuurd.")
    await expect(subject.locator("#code")).to_have_count(1)
