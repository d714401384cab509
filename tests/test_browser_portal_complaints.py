"""The subject's complaint form (and an appeal's status page) in a real browser (Debian's
Chromium): what the portal's table of controls, tests/test_browser_every_portal_control.py, names
"complaints". A UK subject complains from the link in our refusal, in English, French and German,
the form refused field by field and sent; an appeal's status page names the request it appeals;
either form sent while the workflow engine is down comes back to be sent again.

They share one site and worker (tests/browser_access.py `portal_site`: a refusal's letter, a
complaint's) and one refused UK request; the workflow engine's outage has a site of its own,
without an engine, and so has a complaint closed for another that then ended undecided, whose page
leads to the complaint form (complaints held for compliance there, as the shipped policy holds them)."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.async_api import Page, expect

from api.request_form import words_in
from devstack.processes import free_port
from dsrflow.domain.references import short_reference
from dsrflow.i18n import translations
from policy.model import DEFAULT_POLICY, load_policy
from schemas.requests import MAX_COMPLAINT_REASONS
from tests.browser_access import REQUEST_ID, assert_usable, errors_of, field, phone, portal_site_fixture  # noqa: F401 (the fixture)
from tests.ratelimit_support import stored_for
from tests.refused_requests import appeals_held, one_closed_for_the_other, stored_refusal, withdrawn_by_phone
from tests.support import (
    live_client,
    refused_erasure,
    text_of,
    unique_email,
    verification_code,
    wait_for_letter,
)
from tests.test_browser import CHROMIUM, served_site

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
COMPLAIN = "Complain about our decision"


@pytest.fixture(scope="module")
async def refused_uk(portal_site, pool, mail_sink) -> tuple[str, str, str]:
    """A UK erasure compliance refused: its id, its subject's address, and the complaint form's
    link its letter carries. Complained about, unconfirmed, by the tests that share it."""
    return await _refused_uk(portal_site, pool, mail_sink)


@pytest.fixture(scope="module")
async def refused_uk_to_confirm(portal_site, pool, mail_sink) -> tuple[str, str, str]:
    """Another, for the test that confirms its complaint: once one is being decided, the refusal
    takes no other (dsrflow/domain/appeals.py `refuse_decided`)."""
    return await _refused_uk(portal_site, pool, mail_sink)


async def _refused_uk(portal_site, pool, mail_sink) -> tuple[str, str, str]:
    email = unique_email("portal.uk")
    async with live_client(base_url=portal_site, timeout=30) as http:
        refused, denial = await refused_erasure(http, pool, mail_sink, email, "uk_gdpr", "GB")
    link = re.search(r"http://\S+/portal/complaints\?about=\w+&lang=en", text_of(denial))
    assert link, text_of(denial)
    return refused, email, link.group(0)


async def send_complaint(page: Page, language: str) -> None:
    await page.get_by_role("button", name=translations(language).gettext("Send my complaint")).click()


async def unknown_reference_refused(page: Page, seen: list[str], language: str, reference: str, reasons: str,
                                    said: str) -> None:
    """The complaint form sent with a reference that is none of ours: refused beside that field
    (`said` in its message), the reference and the reasons kept as typed."""
    about = field(page, language, "Reference of the request we refused")
    typed = field(page, language, "What is your complaint about?")
    await about.fill(reference)
    await typed.fill(reasons)
    await send_complaint(page, language)
    shown = await assert_usable(page, seen, language, COMPLAIN, refused=True)
    assert errors_of(shown) == ["about-error"]
    await expect(page.locator("#about-error")).to_contain_text(said)
    await expect(about).to_have_value(reference)
    await expect(typed).to_have_value(reasons)


async def test_a_uk_subject_complains_from_the_link_in_our_refusal(browser, portal_site, pool, mail_sink,
                                                                   refused_uk_to_confirm):
    refused, email, link = refused_uk_to_confirm
    reference = short_reference(refused)
    page, seen = await phone(browser)
    await page.goto(link)
    await assert_usable(page, seen, "en", COMPLAIN)
    about, address = field(page, "en", "Reference of the request we refused"), field(page, "en", "Your e-mail address")
    reasons = field(page, "en", "What is your complaint about?")
    await expect(about).to_have_value(reference)

    # Sent without saying what it is about: refused beside the field, what was typed kept.
    await address.fill(email)
    await send_complaint(page, "en")
    said = await assert_usable(page, seen, "en", COMPLAIN, refused=True)
    assert errors_of(said) == ["complaint_reasons-error"]
    await expect(page.locator("#complaint_reasons-error")).to_contain_text("Tell us what your complaint is about.")
    await expect(about).to_have_value(reference)
    await expect(address).to_have_value(email)
    await page.locator(".error-summary a").click()
    await expect(reasons).to_be_focused()

    # A control character among the words (pasted from elsewhere): refused, the text kept as typed.
    pasted = "<b>You kept my invoices</b> \x1b[2J & ignored my letter."
    await reasons.fill(pasted)
    await send_complaint(page, "en")
    said = await assert_usable(page, seen, "en", COMPLAIN, refused=True)
    assert errors_of(said) == ["complaint_reasons-error"]
    await expect(page.locator("#complaint_reasons-error")).to_contain_text(
        f"in at most {MAX_COMPLAINT_REASONS} characters, as plain text")
    await expect(reasons).to_have_value(pasted)

    # A reference that is none of ours: refused naming it, the rest kept.
    await unknown_reference_refused(page, seen, "en", "ZZ9ZZ9ZZ9Z", "You kept my invoices.",
                                    "We have no request ZZ9ZZ9ZZ9Z of yours that we refused")

    # Markup and line breaks, typed past the cap: the field stops at it, and all of it is taken.
    hostile = ('<script>alert("reasons")</script>\n<b>You kept my invoices</b> & ignored my letter.\n'
               + "Please look again. " * 120)
    await about.fill(reference)
    await reasons.fill(hostile)
    await expect(reasons).to_have_value(hostile[:MAX_COMPLAINT_REASONS])
    await send_complaint(page, "en")
    await expect(page).to_have_url(REQUEST_ID)
    await assert_usable(page, seen, "en", "Confirm it is you")
    complaint = REQUEST_ID.search(page.url).group(1)
    details = await pool.fetchval("SELECT details FROM dsr_requests WHERE id = $1::uuid", complaint)
    assert details["complaint_reasons"] == hostile[:MAX_COMPLAINT_REASONS].strip()
    assert details["appeal_of"] == refused
    acknowledgement = await wait_for_letter(mail_sink, complaint, "acknowledgement")
    assert acknowledgement["Subject"] == f"We have received your complaint (ref. {short_reference(complaint)})"
    assert "invoices" not in acknowledgement.as_string()

    # Confirmed with the code: the status page names the request the complaint is about.
    await page.get_by_label("Code from the e-mail").fill(
        verification_code(await wait_for_letter(mail_sink, complaint, "verification")))
    await page.get_by_role("button", name="Confirm").click()
    await expect(page).to_have_url(f"{portal_site}/portal/requests/{complaint}")
    await assert_usable(page, seen, "en", "Your request")
    await expect(page.locator("#complaint-about")).to_have_text(f"request {reference}")


async def test_the_complaint_form_in_french_and_german_with_and_without_its_reference(
        browser, portal_site, pool, mail_sink, refused_uk):
    refused, email, link = refused_uk
    reference = short_reference(refused)
    page, seen = await phone(browser)

    # Opened without a reference, in French, sent empty: each field refused, in French.
    await page.goto(f"{portal_site}/portal/complaints?lang=fr")
    await assert_usable(page, seen, "fr", COMPLAIN)
    await expect(field(page, "fr", "Reference of the request we refused")).to_have_value("")
    await send_complaint(page, "fr")
    said = await assert_usable(page, seen, "fr", COMPLAIN, refused=True)
    assert sorted(errors_of(said)) == ["about-error", "complaint_reasons-error", "email-error"]

    # Its words typed, the address not: refused again. German chosen on the refused page: the
    # complaint form again, in German, its words kept and its error in German (the language was a
    # link to the form, which kept the reference alone), nothing sent.
    words = "Vous avez gardé mes factures.\nRevoyez-le, svp."
    await field(page, "fr", "What is your complaint about?").fill(words)
    await send_complaint(page, "fr")
    await assert_usable(page, seen, "fr", COMPLAIN, refused=True)
    await page.get_by_role("navigation", name=translations("fr").gettext("Language")).get_by_role(
        "button", name="Deutsch").click()
    said = await assert_usable(page, seen, "de", COMPLAIN, refused=True)
    assert sorted(errors_of(said)) == ["about-error", "email-error"]
    await expect(page.locator("#email-error")).to_contain_text(
        translations("de").gettext("Enter your e-mail address, like name@example.com."))
    await expect(field(page, "de", "What is your complaint about?")).to_have_value(words)

    # An unknown reference, in German: refused naming it, what was typed kept.
    await field(page, "de", "Your e-mail address").fill(email)
    await unknown_reference_refused(page, seen, "de", "QQ7QQ7QQ7Q", "Sie haben meine Rechnungen behalten.",
                                    "QQ7QQ7QQ7Q")
    # The reference named as our German letters name it ("Request reference": "Vorgangsnummer"),
    # the field and its refusal alike; they said "Referenz", a word no letter showed.
    letters_word = translations("de").gettext("Request reference")
    await expect(page.locator("label[for=about]")).to_contain_text(letters_word)
    await expect(page.locator("#about-error")).to_contain_text(f"die {letters_word} in unserer E-Mail")

    # The letter's link, French chosen on it: the reference kept, the complaint in French.
    await page.goto(link)  # its `lang=en`, the letter's language
    await page.get_by_role("navigation", name="Language").get_by_role("link", name="Français").click()
    await assert_usable(page, seen, "fr", COMPLAIN)
    await expect(field(page, "fr", "Reference of the request we refused")).to_have_value(reference)
    await field(page, "fr", "Your e-mail address").fill(email)
    await field(page, "fr", "What is your complaint about?").fill("Vous avez gardé mes factures.\nRevoyez-le, svp.")
    await send_complaint(page, "fr")
    await expect(page).to_have_url(REQUEST_ID)
    await assert_usable(page, seen, "fr", "Confirm it is you")
    complaint = REQUEST_ID.search(page.url).group(1)
    assert await pool.fetchval("SELECT language FROM dsr_requests WHERE id = $1::uuid", complaint) == "fr"
    acknowledgement = await wait_for_letter(mail_sink, complaint, "acknowledgement")
    assert acknowledgement["Subject"] == translations("fr").gettext(
        "We have received your complaint (ref. %(ref)s)") % {"ref": short_reference(complaint)}


async def test_an_appeals_status_page_names_the_request_it_appeals(browser, portal_site, pool, mail_sink):
    """A VCDPA erasure refused and appealed (the subject replying, or over the public API): the
    appeal's status page, found by the appeal's reference, names the refused request, in each
    language, as its letters do; it read as a new erasure request before."""
    email = unique_email("portal.appeal")
    async with live_client(base_url=portal_site, timeout=30) as http:
        refused, _ = await refused_erasure(http, pool, mail_sink, email, "vcdpa", "US")
        r = await http.post("/v1/public/requests", json={"type": "erasure", "email": email,
                                                         "appeal_of": short_reference(refused)})
        assert r.status_code == 202, r.text
    appeal = r.json()["id"]
    page, seen = await phone(browser)
    await page.goto(f"{portal_site}/portal")
    await page.get_by_label("Reference (of your request, appeal or complaint)").fill(short_reference(appeal))
    await page.get_by_role("button", name="See its status").click()
    await assert_usable(page, seen, "en", "Your request")
    await expect(page.locator("#appeal-of")).to_have_text(f"request {short_reference(refused)}")
    await expect(page.locator("dt", has_text="Appeal of")).to_have_count(1)
    await expect(page.locator("#complaint-about")).to_have_count(0)
    for language, words in (("fr", "demande"), ("nl", "verzoek"), ("de", "Antrag")):
        await page.goto(f"{portal_site}/portal/requests/{appeal}?lang={language}")
        await assert_usable(page, seen, language, "Your request")
        await expect(page.locator("dt", has_text=translations(language).gettext("Appeal of"))).to_have_count(1)
        await expect(page.locator("#appeal-of")).to_have_text(f"{words} {short_reference(refused)}")


async def test_a_complaint_closed_for_another_that_ended_undecided_leads_to_the_form(
        browser, settings, lifecycle_policy, tmp_path, pool, dev_server, mail_sink):
    """Two complaints about one refusal, the second closed for the first, which the subject then
    withdraws: the second's page, in French, offers the complaint form about the refused request
    (api/public/status_words.py `Said`), and pressing it opens the form on that request, in French.
    A site of its own, with complaints waiting for compliance as the shipped policy's do (the
    first must still be open when the second is confirmed)."""
    held = appeals_held(settings, lifecycle_policy, tmp_path)
    email = unique_email("portal.uk.closed-for")
    refused = await stored_refusal(pool, held, email, "uk_gdpr", type="erasure")
    async with served_site(held, pool, dev_server.client, f"portal-held-{uuid.uuid4().hex[:8]}") as site:
        async with live_client(base_url=site, timeout=30) as http:
            first, second = await one_closed_for_the_other(http, pool, mail_sink, email, refused)
            await withdrawn_by_phone(http, pool, first)
        await wait_for_letter(mail_sink, first, "cancellation")
        page, seen = await phone(browser)
        await page.goto(f"{site}/portal/requests/{second}?lang=fr")
        await assert_usable(page, seen, "fr", "Your request")
        await page.get_by_role("link", name=translations("fr").gettext(COMPLAIN)).click()
        await assert_usable(page, seen, "fr", COMPLAIN)
        await expect(field(page, "fr", "Reference of the request we refused")).to_have_value(short_reference(refused))


async def test_a_form_sent_while_the_workflow_engine_is_down_comes_back_to_be_sent_again(
        browser, settings, pool, refused_uk):
    """Either form, sent while the workflow engine does not answer: the request is stored, its
    workflow not started. The subject read staff's words, in English whatever their language (the
    request's id, "Repeat the call with the same Idempotency-Key", the sweep's minutes); now the
    form comes back as sent, in their language, saying to send it again in a few seconds, and sent
    again it is the same request, not a second one. Under the full policy, whose columns may be
    corrected (the tests' has none): a rectification, its fields named in Dutch."""
    refused, email, _ = refused_uk
    nowhere = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}",
                                          "policy_path": DEFAULT_POLICY})
    phone_word = words_in(load_policy(), "nl")["phone"]
    async with served_site(nowhere, pool, None, f"portal-down-{uuid.uuid4().hex[:8]}", worker=False) as site:
        page, seen = await phone(browser)
        await page.goto(f"{site}/portal?lang=nl")
        await page.locator('input[name=type][value="rectification"]').check()
        await page.locator("#correct_name").fill("Ada Lovelace")
        await page.locator("#other_corrections").fill(f"{phone_word}: +32 470 12 34 56")
        await field(page, "nl", "Your e-mail address").fill(address := unique_email("portal.down"))
        await sent_twice_while_down(page, seen, "nl", "Ask about your personal data", pool, address)
        await expect(page.locator("#other_corrections")).to_have_value(f"{phone_word}: +32 470 12 34 56")
        details = await pool.fetchval("SELECT details FROM dsr_requests WHERE subject_email = $1", address)
        assert details["corrections"] == {"name": "Ada Lovelace", "phone": "+32 470 12 34 56"}

        await page.goto(f"{site}/portal/complaints?about={short_reference(refused)}&lang=de")
        await field(page, "de", "What is your complaint about?").fill("Sie haben meine Rechnungen behalten.")
        await field(page, "de", "Your e-mail address").fill(email)
        await sent_twice_while_down(page, seen, "de", COMPLAIN, pool, email)
        await expect(field(page, "de", "What is your complaint about?")).to_have_value(
            "Sie haben meine Rechnungen behalten.")


async def sent_twice_while_down(page: Page, seen: list[str], language: str, heading: str, pool, address: str) -> None:
    """Send the form on `page`, then again as the page asks: each time the form comes back, saying
    so, and one request is stored for `address`."""
    before = await stored_for(pool, address)
    for _ in range(2):
        await page.locator("main form[method=post] button[type=submit]").click()
        said = await assert_usable(page, seen, language, heading, refused=True)
        assert errors_of(said) == ["not-started"]
        await expect(page.get_by_role("alert")).to_have_text(translations(language).gettext(
            "Part of our service is not answering for a moment; please try again in a few seconds. "
            "Nothing you sent has been lost."))
        await expect(field(page, language, "Your e-mail address")).to_have_value(address)
    assert await stored_for(pool, address) == before + 1

