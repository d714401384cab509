"""Every button, link that acts, form and field with behaviour the subject's portal can show, on each
page and in each state: the browser test (Debian's Chromium) that presses it. The portal has no
roles: whoever holds the link or the reference sees the same page, in the language they chose
(en, nl, fr, de: tests/test_browser_portal_access.py opens every page in each, at phone width, and
checks labels, errors and focus). Pages: api/public/portal.py, api/public/portal_verify.py,
api/templates/portal/; the console's table: tests/test_browser_every_button.py.

Files are tests/test_browser_<name>.py ("portal" is tests/test_browser_portal.py, "access"
portal_access, "every" this module); test names are shortened.

| control (page, state)                          | shown when                      | pressed by                                            |
|------------------------------------------------|---------------------------------|-------------------------------------------------------|
| header: Skip to content                        | every page                      | access keyboard_alone; new_pages page_not_found       |
| header: a language on a refused request form   | the request form sent back      | every language_chosen_on_a_refused_form (de, no       |
| (a button: the form sent back in it, as typed) | (refused, or not started)       | JavaScript)                                           |
| header: controller's name (to /portal)         | every page                      | navigation subject_switches_language                  |
| header: language links                         | every page; a page's query kept | portal looks_up (status, verify); navigation          |
|                                                | (a link's token, `about`); a    | subject_switches_language (form, status, the e-mail's |
|                                                | form's answer: to its form      | link, not found); access keyboard_alone; every        |
|                                                |                                 | complaint_in_french_and_german (refused complaint,    |
|                                                |                                 | the letter's link)                                    |
| footer: privacy e-mail address (mailto:)       | every page                      | not pressed: opens the visitor's mail program         |
| form: each type (radio), its part of the form  | /portal                         | access every_page (each type, each language); team    |
|                                                |                                 | forms_show_only_the_chosen_types; access keyboard     |
| form: e-mail, name                             | /portal                         | browser subject_verifies; access every_page (refused) |
| form: country (a list, by name in the page's   | /portal                         | browser subject_verifies (BE); access keyboard (type- |
| language)                                      |                                 | ahead); every sends_each_type (French names)          |
| form: correct name, other corrections          | rectification chosen            | every engine_is_down (full policy, Dutch words);      |
|                                                |                                 | access every_page (refused: no colon)                 |
| form: restriction grounds                      | restriction chosen              | access keyboard (Space); every_page (refused)         |
| form: objection scope                          | objection chosen                | every sends_each_type; access every_page (refused)    |
| form: Send my request                          | /portal                         | access: browser, team, cross_site; erasure, objection,|
|                                                |                                 | portability: every sends_each_type; restriction:      |
|                                                |                                 | access keyboard; rectification: every engine_is_down  |
| form: error summary's links                    | a form refused                  | access every_page (each field), keyboard; review      |
|                                                |                                 | refuses_a_bad_form                                    |
| form: sent again (request stored, not started) | the workflow engine down        | every engine_is_down (Dutch)                          |
| form: Reference, See its status                | /portal                         | portal looks_up (found); access every_page (not       |
|                                                |                                 | found); navigation (French); access keyboard          |
| header: a language on a refused complaint form | the complaint form sent back    | every complaint_in_french_and_german (fr to de)       |
| complaint: reference of the refused request    | /portal/complaints; filled from | every from_the_link (en: kept, unknown); every        |
|                                                | the letter's `about`, or empty  | complaint_in_french_and_german (empty fr, unknown de) |
| complaint: e-mail, What is your complaint      | /portal/complaints              | every from_the_link (empty, a control character,      |
| about? (at most 2,000 characters)              |                                 | markup past the cap); complaint_in_french_and_german  |
| complaint: Send my complaint                   | /portal/complaints              | every from_the_link (en), complaint_in_french_and_    |
|                                                |                                 | german (fr, de); engine_is_down (de, sent again)      |
| complaint: error summary's link                | a complaint refused             | every from_the_link                                   |
| verify: code, Confirm                          | awaiting confirmation           | browser subject_verifies; access every_page (wrong,   |
|                                                |                                 | no code, each language); portal relay_refuses;        |
|                                                |                                 | verify_states last_code; no_worker (paused, then      |
|                                                |                                 | confirmed); every from_the_link (a complaint's code); |
|                                                |                                 | every first_e_mails_code (after a new code, nl)       |
| verify: Yes, I made this request               | the e-mail's link opened; the   | portal looks_up_confirms_by_link; navigation (fr);    |
|                                                | latest e-mail's after a lock    | every link_after_a_lock (locked: it confirms)         |
| verify: an earlier e-mail's link, pressed      | a later code sent, locked or    | every link_after_a_lock (refused: the latest link and |
| (refused; its page's code form and new code)   | not                             | a new code offered); verify_states last_code (no lock:|
|                                                |                                 | Send me a new code, then the last code typed there)   |
| verify: a wrong code, this client's last for   | three wrong codes from one      | verify_states clients_last_code_for_now (en, fr:      |
| now (said, with the ways on)                   | client within the hour          | Send me a new code, its code confirms)                |
| verify: Send me a new code                     | awaiting, codes left; locked    | access keyboard; team asks_for_a_new_code (also       |
|                                                |                                 | locked); portal relay_refuses; verify_states          |
|                                                |                                 | last_code (until none is left: no button)             |
| verify: the e-mail's link cut short (its code  | a link's token not whole        | every link_cut_short (fr)                             |
| form, "This link is not complete.")            |                                 |                                                       |
| verify: status of your request (in the hint)   | awaiting confirmation           | navigation subject_switches_language                  |
| verify: See the status of your request         | nothing to confirm; paused      | portal looks_up (confirmed); resume subject_of_a_     |
|                                                |                                 | stopped_request (paused); access closed_unconfirmed   |
|                                                |                                 | (shown)                                               |
| verify, status: Send a new request             | closed unconfirmed (expired)    | access closed_unconfirmed (both)                      |
| status: Enter the code from our e-mail         | awaiting confirmation, not      | portal looks_up (nl); navigation (de); not shown      |
|                                                | paused                          | paused: resume subject_of_a_stopped_request           |
| status: Complaint about (no control)           | a complaint                     | every from_the_link                                   |
| status: Appeal of (no control)                 | an appeal (VCDPA, CTDPA, CPA)   | every appeals_status_page (each language)             |
| status, verify: withdrawn or cancelled by us   | a request cancelled             | every withdrawal_reads_as_the_subjects (each language)|
| (no control: the words say which)              |                                 |                                                       |
| status: privacy address to withdraw (mailto:)  | an open request                 | not pressed (the visitor's mail program): access      |
|                                                |                                 | past_its_due_date reads its words and address         |
| status: the authority's website (a link out)   | past its due date, open         | not pressed (another site): access past_its_due_date  |
|                                                |                                 | reads it, under every law                             |
| package: Download your data                    | a valid link                    | review refuses_a_bad_form (mouse); access keyboard    |
| problem page: Back to the start                | every problem page (not found,  | navigation (request not found, nl); new_pages (page   |
|                                                | link expired, deleted, too many,| not found, keyboard and mouse, each language); the    |
|                                                | another website, appeal)        | others shown: access every_page, too_many_attempts    |
| unavailable page: Try again                    | the database down, a page read  | not pressed in a browser: tests/test_outages.py reads |
|                                                |                                 | it over HTTP (a database to stop and start again)     |

The tests below press what the table's "every" names. They share one site and worker (a refusal's
letter, a complaint's, a locked request's codes) and one refused UK request; the workflow engine's
outage has a site of its own, without an engine."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect

from api.request_form import words_in
from devstack.processes import free_port
from dsrflow.domain.references import short_reference
from dsrflow.i18n import translations
from policy.model import DEFAULT_POLICY, load_policy
from schemas.requests import MAX_COMPLAINT_REASONS
from tests.browser_access import assert_usable, errors_of, phone
from tests.ratelimit_support import stored_for
from tests.support import (
    eventually,
    letters_for,
    live_client,
    refused_erasure,
    staff_headers,
    text_of,
    unique_email,
    verification_code,
    verification_link,
    wait_for_letter,
)
from tests.test_browser import CHROMIUM, five_wrong_codes, open_request, served_site

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
COMPLAIN = "Complain about our decision"
REQUEST_ID = re.compile(r"/portal/requests/([0-9a-f-]{36})/verify$")


@pytest.fixture(scope="module")
async def portal_site(settings, pool, dev_server) -> AsyncIterator[str]:
    """The whole app and a worker for the module: a refusal's letter, a complaint's, a lock's codes."""
    async with served_site(settings, pool, dev_server.client, f"portal-{uuid.uuid4().hex[:8]}") as url:
        yield url


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


def field(page: Page, language: str, label: str):
    return page.get_by_label(translations(language).gettext(label), exact=True)


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


async def test_a_withdrawal_reads_as_the_subjects_and_a_cancellation_by_us_as_a_refusal(
        browser, portal_site, pool, mail_sink):
    """Staff record a subject's withdrawal (their e-mail asked for it), and cancel another request
    themselves, which refuses it: the status page and the verify page (a late e-mail's link) say
    which, in each language; both read "This request was cancelled." alone before."""
    words = {
        True: ("You withdrew this request, and we have closed it.",
               "If you did not ask us to withdraw it, tell us at once by replying to our e-mail."),
        False: ("This request was cancelled.", "Our e-mail explains why and how you can challenge it."),
    }
    closed = {}
    async with live_client(base_url=portal_site, timeout=30) as http:
        for withdrawn in words:
            rid = await open_request(portal_site, pool)
            r = await http.post(f"/v1/requests/{rid}/cancel", headers=await staff_headers(pool, "compliance"), json={
                "reason": "Asked by e-mail" if withdrawn else "A duplicate of another request",
                "withdrawn_by_subject": withdrawn})
            assert r.status_code == 200, r.text
            closed[withdrawn] = rid
    page, seen = await phone(browser)
    for withdrawn, rid in closed.items():
        link = verification_link(await wait_for_letter(mail_sink, rid, "verification"))
        for language in ("en", "nl", "fr", "de"):
            t = translations(language)
            said = " ".join(t.gettext(sentence) for sentence in words[withdrawn])
            await page.goto(f"{portal_site}/portal/requests/{rid}?lang={language}")
            await assert_usable(page, seen, language, "Your request")
            await expect(page.locator("#status-words")).to_have_text(said)
            await page.goto(link)
            await assert_usable(page, seen, language, "Confirm it is you")
            await expect(page.locator("#status-words")).to_have_text(said)
            await expect(page.get_by_role("button")).to_have_count(0)


async def test_the_first_e_mails_code_after_a_new_one_says_only_the_latest_works(browser, portal_site, pool, mail_sink):
    """The subject asks for a new code, then types the first e-mail's (it arrived late, or is the
    one they found): the alert says it is an earlier e-mail's code and that only the latest
    e-mail's works, in the page's language, and no attempt is spent (workflows/verification.py
    EARLIER_CODE); a wrong code before any new one says it is not right. Before, it said only
    "That code is not right", and the attempt was spent."""
    rid = await open_request(portal_site, pool)
    first = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
    wrong = "000000" if first != "000000" else "111111"
    page, seen = await phone(browser)
    await page.goto(f"{portal_site}/portal/requests/{rid}/verify?lang=nl")
    t = translations("nl")
    latest = t.gettext("We have sent you more than one code: only the one in our latest e-mail works.")
    await field(page, "nl", "Code from the e-mail").fill(wrong)
    await page.get_by_role("button", name=t.gettext("Confirm"), exact=True).click()
    await assert_usable(page, seen, "nl", "Confirm it is you", refused=True)
    await expect(page.get_by_role("alert")).to_have_text(
        f"{t.gettext('That code is not right.')} {t.ngettext('You have %(num)d attempt left.', 'You have %(num)d attempts left.', 4) % {'num': 4}}")

    await page.get_by_role("button", name=t.gettext("Send me a new code")).click()
    await expect(page.get_by_role("status")).to_contain_text(t.gettext("We have sent you a new code and link."))

    async def the_new_code_sent() -> bool:
        return len(letters_for(mail_sink, rid, "verification")) == 2
    await eventually(the_new_code_sent)
    await field(page, "nl", "Code from the e-mail").fill(first)
    await page.get_by_role("button", name=t.gettext("Confirm"), exact=True).click()
    await assert_usable(page, seen, "nl", "Confirm it is you", refused=True)
    await expect(page.get_by_role("alert")).to_contain_text(
        t.gettext("That code is from an earlier e-mail: it no longer works."))
    await expect(page.get_by_role("alert")).to_contain_text(latest)
    await expect(page.get_by_role("alert")).not_to_contain_text(t.gettext("That code is not right."))

    [latest_code] = {verification_code(m) for m in letters_for(mail_sink, rid, "verification")} - {first}
    await field(page, "nl", "Code from the e-mail").fill(latest_code)
    await page.get_by_role("button", name=t.gettext("Confirm"), exact=True).click()
    await expect(page).to_have_url(f"{portal_site}/portal/requests/{rid}")


async def test_a_language_chosen_on_a_refused_form_keeps_what_was_typed(browser, portal_site, pool):
    """The request form refused (a restriction with no ground ticked); the subject, to read the
    error, chooses German: the same form comes back in German, as typed, its error in German, and
    nothing is sent until its own button is pressed. Before, the language was a link to an empty
    form: the type, address and name typed were gone. The same without JavaScript."""
    email = unique_email("portal.retype")
    context = await browser.new_context(viewport={"width": 390, "height": 800}, java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{portal_site}/portal?lang=en")
    await page.get_by_label("Restriction of processing").check()
    await page.get_by_label("Your e-mail address").fill(email)
    await page.get_by_label("Your name (optional)").fill("Jan Peeters")
    await page.get_by_role("button", name="Send my request").click()
    await expect(page.locator("#restriction_grounds-error")).to_contain_text("at least one Art. 18(1) ground")

    de = translations("de")
    await page.get_by_role("navigation", name="Language").get_by_role("button", name="Deutsch").click()
    await expect(page.locator("html")).to_have_attribute("lang", "de")
    await expect(page.get_by_role("heading", level=1)).to_have_text(de.gettext("Ask about your personal data"))
    await expect(page.locator("#restriction_grounds-error")).to_contain_text(de.gettext(
        "A restriction needs at least one Art. 18(1) ground: tick each one that applies."))
    await expect(page.locator("#type-restriction")).to_be_checked()
    await expect(page.get_by_label(de.gettext("Your e-mail address"))).to_have_value(email)
    await expect(page.get_by_label(de.gettext("Your name (optional)"))).to_have_value("Jan Peeters")
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 0

    await page.locator("input[name=restriction_grounds]").first.check()
    await page.get_by_role("button", name=de.gettext("Send my request")).click()
    await expect(page).to_have_url(REQUEST_ID)
    await expect(page.get_by_role("heading", level=1)).to_have_text(de.gettext("Confirm it is you"))
    assert await pool.fetchval("SELECT language FROM dsr_requests WHERE subject_email = $1", email) == "de"
    await context.close()


async def test_a_link_cut_short_and_a_form_answers_address_opened_again(browser, portal_site, pool, mail_sink):
    """The e-mail's link cut short (a mail program wrapped it): its page says the link is not
    complete, in the page's language, and offers the code, where it read as if no link had been
    opened. The addresses the request form and "Send me a new code" answered at, opened again
    (history, a restored tab): the form and the verify page, where they read "Page not found"."""
    rid = await open_request(portal_site, pool)
    link = verification_link(await wait_for_letter(mail_sink, rid, "verification"))
    page, seen = await phone(browser)
    t = translations("fr")
    await page.goto(f"{link[:-20]}&lang=fr")
    await assert_usable(page, seen, "fr", "Confirm it is you", refused=True)
    await expect(page.get_by_role("alert")).to_have_text(
        f"{t.gettext('This link is not complete.')} "
        f"{t.gettext('Please copy the whole link from our e-mail, or enter the code instead.')}")
    await expect(field(page, "fr", "Code from the e-mail")).to_be_visible()
    await expect(page.get_by_role("button", name=t.gettext("Yes, I made this request"))).to_have_count(0)

    await page.goto(f"{portal_site}/portal/requests/{rid}/resend")
    await expect(page).to_have_url(f"{portal_site}/portal/requests/{rid}/verify")
    await assert_usable(page, seen, "fr", "Confirm it is you")
    await page.goto(f"{portal_site}/portal/requests")
    await expect(page).to_have_url(f"{portal_site}/portal")
    await assert_usable(page, seen, "fr", "Ask about your personal data")


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


async def test_the_link_after_a_lock_the_latest_e_mails_confirms_an_earlier_ones_is_refused(
        browser, portal_site, pool, mail_sink):
    """Too many wrong codes lock the typed code, not the link in the subject's latest e-mail
    (workflows/verification.py LINK_OUTLIVES_LOCK): its button confirms. An earlier e-mail's
    button, pressed after the lock, is refused, naming the link that works and offering a code."""
    async with live_client(base_url=portal_site, timeout=30) as http:
        opened = await http.post("/v1/public/requests", json={"type": "erasure", "email": unique_email("portal.lock")})
        rid = opened.json()["id"]
        earlier = await wait_for_letter(mail_sink, rid, "verification")
        # Staff's resend: the portal's button counts per client, and every page here is 127.0.0.1's.
        resent = await http.post(f"/v1/requests/{rid}/resend-verification", headers=await staff_headers(pool, "agent"))
        assert resent.status_code == 200, resent.text

    async def two_sent() -> bool:
        return len(letters_for(mail_sink, rid, "verification")) == 2

    await eventually(two_sent)
    latest = letters_for(mail_sink, rid, "verification")[-1]
    page, seen = await phone(browser)
    await page.goto(f"{portal_site}/portal/requests/{rid}/verify")
    await five_wrong_codes(page, verification_code(latest), "Confirm", ("4 attempts", "3 attempts", "2 attempts",
                                                                        "1 attempt"), "You have %s left.")
    await expect(page.get_by_role("alert")).to_contain_text("that was the last attempt")

    await page.goto(verification_link(earlier))
    await page.get_by_role("button", name="Yes, I made this request").click()
    said = await assert_usable(page, seen, "en", "Confirm it is you", refused=True)
    assert errors_of(said) == ["code-error"]
    await expect(page.get_by_role("alert")).to_contain_text("This link is from an earlier e-mail: it no longer works.")
    await expect(page.get_by_role("alert")).to_contain_text("The link in our latest e-mail still works")
    await expect(page.get_by_role("button", name="Send me a new code")).to_have_count(1)

    await page.goto(verification_link(latest))
    await assert_usable(page, seen, "en", "Confirm it is you")
    await page.get_by_role("button", name="Yes, I made this request").click()
    await expect(page).to_have_url(f"{portal_site}/portal/requests/{rid}")
    await assert_usable(page, seen, "en", "Your request")
    assert await pool.fetchval("SELECT data->>'after_lock' FROM audit_events WHERE request_id = $1 AND event_type = "
                               "'verification.succeeded'", rid) == "true"


async def test_the_request_form_sends_each_type_no_other_test_sends(browser, portal_site, pool):
    """Erasure, an objection (its scope chosen) and portability, each with a country chosen from the
    list by its French name, pressed as a person would, in French. (Rectification: the test below,
    under a policy with columns to correct.)"""
    page, seen = await phone(browser)
    t = translations("fr")
    sent = {}
    for kind in ("erasure", "objection", "portability"):
        await page.goto(f"{portal_site}/portal?lang=fr")
        await page.locator(f'input[name=type][value="{kind}"]').check()
        await page.get_by_label(t.gettext("Your e-mail address")).fill(unique_email(f"portal.{kind}"))
        await page.get_by_label(t.gettext("Your country (optional)")).select_option(
            label="Royaume-Uni" if kind == "portability" else "Belgique")
        if kind == "objection":
            await page.locator("#objection_scope input").first.check()
        await page.get_by_role("button", name=t.gettext("Send my request")).click()
        await expect(page).to_have_url(REQUEST_ID)
        await assert_usable(page, seen, "fr", "Confirm it is you")
        sent[kind] = REQUEST_ID.search(page.url).group(1)
    rows = {kind: await pool.fetchrow("SELECT request_type, country, language, details FROM dsr_requests "
                                      "WHERE id = $1::uuid", rid) for kind, rid in sent.items()}
    assert rows["objection"]["details"]["objection_scope"]
    assert (rows["portability"]["country"], rows["objection"]["country"]) == ("GB", "BE")
    assert {(row["request_type"], row["language"]) for row in rows.values()} == {
        (kind, "fr") for kind in sent}


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
