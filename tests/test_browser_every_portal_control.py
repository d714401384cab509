"""Every button, link that acts, form and field with behaviour the subject's portal can show, on each
page and in each state: the browser test (Debian's Chromium) that presses it. The portal has no
roles: whoever holds the link or the reference sees the same page, in the language they chose
(en, nl, fr, de: tests/test_browser_portal_access.py opens every page in each, at phone width, and
checks labels, errors and focus). Pages: api/public/portal.py, api/public/portal_verify.py,
api/templates/portal/; the console's table: tests/test_browser_every_button.py.

Files are tests/test_browser_<name>.py ("portal" is tests/test_browser_portal.py, "access"
portal_access, "states" portal_access_states, "complaints" portal_complaints, "every" this
module); test names are shortened.

| control (page, state)                          | shown when                      | pressed by                                            |
|------------------------------------------------|---------------------------------|-------------------------------------------------------|
| header: Skip to content                        | every page                      | access keyboard_alone; new_pages page_not_found       |
| header: a language on a refused request form   | the request form sent back      | every language_chosen_on_a_refused_form (de, no       |
| (a button: the form sent back in it, as typed) | (refused, or not started)       | JavaScript)                                           |
| header: controller's name (to /portal)         | every page                      | navigation subject_switches_language                  |
| header: language links                         | every page; a page's query kept | portal looks_up (status, verify); navigation          |
|                                                | (a link's token, `about`); a    | subject_switches_language (form, status, the e-mail's |
|                                                | form's answer: to its form      | link, not found); access keyboard_alone; complaints   |
|                                                |                                 | complaint_in_french_and_german (refused complaint,    |
|                                                |                                 | the letter's link)                                    |
| footer: privacy e-mail address (mailto:)       | every page                      | not pressed: opens the visitor's mail program         |
| form: each type (radio), its part of the form  | /portal                         | access every_page (each type, each language); team    |
|                                                |                                 | forms_show_only_the_chosen_types; access keyboard     |
| form: e-mail, name                             | /portal                         | browser subject_verifies; access every_page (refused) |
| form: country (a list, by name in the page's   | /portal                         | browser subject_verifies (BE); access keyboard (type- |
| language)                                      |                                 | ahead); every sends_each_type (French names)          |
| form: correct name, other corrections          | rectification chosen            | complaints engine_is_down (full policy, Dutch words); |
|                                                |                                 | access every_page (refused: no colon)                 |
| form: restriction grounds                      | restriction chosen              | access keyboard (Space); every_page (refused)         |
| form: objection scope                          | objection chosen                | every sends_each_type; access every_page (refused)    |
| form: Send my request                          | /portal                         | access: browser, team, cross_site; erasure,           |
|                                                |                                 | objection, portability: every sends_each_type;        |
|                                                |                                 | restriction: access keyboard; rectification:          |
|                                                |                                 | complaints engine_is_down                             |
| form: error summary's links                    | a form refused                  | access every_page (each field), keyboard; review      |
|                                                |                                 | refuses_a_bad_form                                    |
| form: sent again (request stored, not started) | the workflow engine down        | complaints engine_is_down (Dutch)                     |
| form: Reference, See its status                | /portal                         | portal looks_up (found); access every_page (not       |
|                                                |                                 | found); navigation (French); access keyboard          |
| header: a language on a refused complaint form | the complaint form sent back    | complaints complaint_in_french_and_german (fr to de)  |
| complaint: reference of the refused request    | /portal/complaints; filled from | complaints from_the_link (en: kept, unknown);         |
|                                                | the letter's `about`, or empty  | complaints complaint_in_french_and_german (empty fr,  |
|                                                |                                 | unknown de)                                           |
| complaint: e-mail, What is your complaint      | /portal/complaints              | complaints from_the_link (empty, a control character, |
| about? (at most 2,000 characters)              |                                 | markup past the cap); complaint_in_french_and_german  |
| complaint: Send my complaint                   | /portal/complaints              | complaints from_the_link (en),                        |
|                                                |                                 | complaint_in_french_and_german (fr, de);              |
|                                                |                                 | engine_is_down (de, sent again)                       |
| complaint: error summary's link                | a complaint refused             | complaints from_the_link                              |
| verify: code, Confirm                          | awaiting confirmation           | browser subject_verifies; access every_page (wrong,   |
|                                                |                                 | no code, each language); portal relay_refuses;        |
|                                                |                                 | verify_states last_code; no_worker (paused, then      |
|                                                |                                 | confirmed); complaints from_the_link (a complaint's   |
|                                                |                                 | code); every first_e_mails_code (after a new code,    |
|                                                |                                 | nl)                                                   |
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
| verify: See the status of your request         | nothing to confirm; paused      | portal looks_up (confirmed); resume                   |
|                                                |                                 | subject_of_a_stopped_request (paused); states         |
|                                                |                                 | closed_unconfirmed (shown)                            |
| verify, status: Send a new request             | closed unconfirmed (expired)    | states closed_unconfirmed (both)                      |
| status: Enter the code from our e-mail         | awaiting confirmation, not      | portal looks_up (nl); navigation (de); not shown      |
|                                                | paused                          | paused: resume subject_of_a_stopped_request           |
| status: Complaint about (no control)           | a complaint                     | complaints from_the_link                              |
| status, verify: Complain about our decision    | a UK complaint closed for       | complaints complaint_closed_for_another (fr: lands on |
| (to the form about the refused request)        | another that ended undecided    | the form, its reference filled in)                    |
| status: Appeal of (no control)                 | an appeal (VCDPA, CTDPA, CPA)   | complaints appeals_status_page (each language)        |
| status, verify: withdrawn or cancelled by us   | a request cancelled             | every withdrawal_reads_as_the_subjects (each language)|
| (no control: the words say which)              |                                 |                                                       |
| status: privacy address to withdraw (mailto:)  | an open request                 | not pressed (the visitor's mail program): states      |
|                                                |                                 | past_its_due_date reads its words and address         |
| status: the authority's website (a link out)   | past its due date, open         | not pressed (another site): states past_its_due_date  |
|                                                |                                 | reads it, under every law                             |
| package: Download your data                    | a valid link                    | review refuses_a_bad_form (mouse); access keyboard    |
| problem page: Back to the start                | every problem page (not found,  | navigation (request not found, nl); new_pages (page   |
|                                                | link expired, deleted, too many,| not found, keyboard and mouse, each language); the    |
|                                                | another website, appeal)        | others shown: access every_page, states               |
|                                                |                                 | too_many_attempts                                     |
| unavailable page: Try again                    | the database down, a page read  | not pressed in a browser: tests/test_outages.py reads |
|                                                |                                 | it over HTTP (a database to stop and start again)     |

The tests below press what the table's "every" names (the request form, the verify and status
pages); they share one site and worker (tests/browser_access.py `portal_site`: a locked request's
codes, a cancellation's). What it names "complaints" (the complaint form, an appeal's status page,
either form sent while the workflow engine is down) is pressed by
tests/test_browser_portal_complaints.py."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from dsrflow.i18n import translations
from tests.browser_access import REQUEST_ID, assert_usable, errors_of, field, phone, portal_site_fixture  # noqa: F401 (the fixture)
from tests.support import (
    eventually,
    letters_for,
    live_client,
    staff_headers,
    unique_email,
    verification_code,
    verification_link,
    wait_for_letter,
)
from tests.test_browser import CHROMIUM, five_wrong_codes, open_request

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


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
    list by its French name, pressed as a person would, in French. (Rectification: the engine's
    outage in tests/test_browser_portal_complaints.py, under a policy with columns to correct.)"""
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


