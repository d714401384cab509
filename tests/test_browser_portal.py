"""The subject's portal in a real browser (Debian's Chromium), every link and button a subject
presses between the letter and the status page: "See its status" (the lookup by reference), the
status page's "Enter the code from our e-mail", the verification link's "Yes, I made this request",
the verify page's "See the status of your request", and the language links in the header. No
sign-in. And "Send me a new code" when the relay refuses the new e-mail. Same setup as
tests/test_browser.py."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from dsrflow.domain.references import short_reference
from tests.support import verification_code, verification_link, wait_for_letter
from tests.test_browser import CHROMIUM, open_request, served_site, shots, site  # noqa: F401 (fixtures)
from tests.test_portal import refusing_new_codes

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


async def test_the_subject_looks_up_confirms_by_link_and_switches_language(
        browser, site, pool, mail_sink, shots):  # noqa: F811 (fixtures)
    rid = await open_request(site, pool)
    link = verification_link(await wait_for_letter(mail_sink, rid, "verification"))
    reference = short_reference(rid)
    subject = await (await browser.new_context()).new_page()

    # The front page's status lookup, by the reference typed in lower case.
    await subject.goto(f"{site}/portal")
    await subject.get_by_label("Reference (of your request, appeal or complaint)").fill(reference.lower())
    await subject.get_by_role("button", name="See its status").click()
    await expect(subject).to_have_url(f"{site}/portal/requests/{rid}")
    await expect(subject.locator("#reference")).to_have_text(reference)
    await expect(subject.locator("#status-words")).to_have_text("Waiting for you to confirm that the request is yours.")
    await shots(subject, "status")

    # The language links: Dutch, remembered on the next page, then English again.
    language = subject.get_by_role("navigation", name="Language")
    await language.get_by_role("link", name="Nederlands").click()
    await expect(subject.get_by_role("heading", level=1)).to_have_text("Uw verzoek")
    await expect(subject.locator("#status-words")).to_have_text("Wij wachten tot u bevestigt dat het verzoek van u komt.")
    await expect(subject.locator("html")).to_have_attribute("lang", "nl")
    await subject.get_by_role("link", name="De code uit onze e-mail invoeren").click()
    await expect(subject).to_have_url(f"{site}/portal/requests/{rid}/verify")
    await expect(subject.get_by_role("heading", level=1)).to_have_text("Bevestig dat u het bent")
    await shots(subject, "verify-nl")
    await subject.get_by_role("navigation", name="Taal").get_by_role("link", name="English").click()
    await expect(subject.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
    await expect(subject.get_by_label("Code from the e-mail")).to_be_visible()  # no link opened: the code form
    await expect(subject.get_by_role("button", name="Yes, I made this request")).to_have_count(0)

    # The e-mail's link: opening it confirms nothing, its button does.
    await subject.goto(link)
    await expect(subject.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
    assert await pool.fetchval("SELECT verified_at FROM dsr_requests WHERE id = $1", rid) is None
    await subject.get_by_role("button", name="Yes, I made this request").click()
    await expect(subject).to_have_url(f"{site}/portal/requests/{rid}")
    await expect(subject.get_by_role("status")).to_contain_text("you have confirmed that the request is yours")
    await expect(subject.get_by_role("link", name="Enter the code from our e-mail")).to_have_count(0)
    await shots(subject, "confirmed")
    verified = "SELECT data FROM audit_events WHERE request_id = $1 AND event_type = 'verification.succeeded'"
    assert [r["data"] for r in await pool.fetch(verified, rid)] == [{"method": "email_link"}]

    # The link opened again: nothing to confirm, and the way back to the status.
    await subject.goto(link)
    await expect(subject.locator(".notice")).to_have_text("There is nothing to confirm for this request.")
    await subject.get_by_role("link", name="See the status of your request").click()
    await expect(subject).to_have_url(f"{site}/portal/requests/{rid}")
    await expect(subject.locator("#status-words")).not_to_contain_text("Waiting for you to confirm")
    await shots(subject, "status-again")


async def test_a_new_code_the_relay_refuses_leaves_the_subject_the_code_they_have(
        browser, settings, pool, dev_server, task_queue, mail_sink, shots):  # noqa: F811 (fixtures)
    """"Send me a new code" while the relay refuses the new e-mail: the page says so and that the
    code already sent still works, and that code confirms the request."""
    async with served_site(settings, pool, dev_server.client, task_queue,
                           activity_overrides=[refusing_new_codes(settings, pool)]) as url:
        rid = await open_request(url, pool)
        code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
        subject = await (await browser.new_context()).new_page()
        await subject.goto(f"{url}/portal/requests/{rid}/verify")
        await subject.get_by_role("button", name="Send me a new code").click()
        await expect(subject.get_by_role("alert")).to_contain_text(
            "We could not send a new code for this request just now.")
        await expect(subject.get_by_role("alert")).to_contain_text("The code and link we sent you earlier still work.")
        await shots(subject, "new-code-refused")
        await subject.get_by_label("Code from the e-mail").fill(code)
        await subject.get_by_role("button", name="Confirm").click()
        await expect(subject).to_have_url(f"{url}/portal/requests/{rid}")
        await expect(subject.get_by_role("status")).to_contain_text("you have confirmed that the request is yours")
        await shots(subject, "confirmed-with-the-first-code")
