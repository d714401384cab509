"""The subject's portal, as tests/test_browser_portal_access.py opens it (a real browser, a
phone-width screen, each language, `assert_usable` from tests/browser_access.py on every page), on
the pages of a request that did not go as asked: the verify page locked by too many wrong codes,
too many lookups (429), a post from another website (403), an appeal we cannot open (422), a
request closed because it was not confirmed in time, and one past its due date (we are late; how
to withdraw it). Same setup as tests/test_browser.py."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from playwright.async_api import expect

from activities.letter_templates import longdate
from api.public.status_words import STATUS_WORDS
from dsrflow.domain.references import short_reference
from dsrflow.i18n import translations
from schemas.requests import RequestStatus
from tests.browser_access import LANGUAGES, PRIVACY_EMAIL, assert_usable, errors_of, phone
from tests.policy_once import policy_of
from tests.support import (
    controller_today,
    stored_request,
    unique_email,
    verification_code,
    verification_link,
    wait_for_letter,
)
from tests.test_browser import CHROMIUM, five_wrong_codes, open_request, served_site, shots, site  # noqa: F401 (fixtures)
from tests.test_browser_cross_site import hostile_site

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


async def test_too_many_attempts_and_the_other_refusals(
        browser, settings, pool, dev_server, task_queue, mail_sink, shots):  # noqa: F811 (fixtures)
    """Too many wrong codes (the lock), too many lookups (429), a post from another website (403)
    and an appeal we cannot open (422): each its page, usable as the others."""
    async with served_site(settings, pool, dev_server.client, task_queue) as url:
        rid = await open_request(url, pool)
        letter = await wait_for_letter(mail_sink, rid, "verification")
        page, seen = await phone(browser)
        await page.goto(f"{url}/portal/requests/{rid}/verify")
        await five_wrong_codes(page, verification_code(letter), "Confirm",
                               ("4 attempts", "3 attempts", "2 attempts", "1 attempt"), "You have %s left.")
        page_said = await assert_usable(page, seen, "en", "Confirm it is you", refused=True)
        assert errors_of(page_said) == ["code-error"]
        await shots(page, "locked")
        await page.reload()
        await assert_usable(page, seen, "en", "Confirm it is you")

        # An appeal of a request that cannot be appealed: only a crafted post names one.
        await page.goto(f"{url}/portal")
        await page.locator('input[name=type][value="erasure"]').check()
        await page.locator("#email").fill("ada@example.com")
        await page.locator("form[action='/portal/requests']").evaluate(
            "(form, rid) => { const i = document.createElement('input'); i.type = 'hidden'; i.name = 'appeal_of';"
            " i.value = rid; form.append(i); }", rid)
        await page.locator("form[action='/portal/requests'] button[type=submit]").click()
        await assert_usable(page, seen, "en", "We cannot open this appeal")
        await shots(page, "appeal")

        # A post sent from another website's page (what that site's page did is not ours).
        async with hostile_site(url, unique_email("hostile")) as hostile:
            await page.goto(hostile)
            await expect(page).to_have_url(f"{url}/portal/requests")
        seen[:] = [problem for problem in seen if hostile.rstrip("/") not in problem]
        await assert_usable(page, seen, "en", "Sent from another website")
        await shots(page, "cross-site")

    # Too many lookups (each client's: every page here comes from 127.0.0.1).
    strict = settings.model_copy(update={"rate_lookup_per_ip": "3/hour"})
    async with served_site(strict, pool, dev_server.client, task_queue) as url:
        page, seen = await phone(browser)
        for _ in range(4):
            await page.goto(f"{url}/portal/requests/{rid}")
        await assert_usable(page, seen, "en", "Too many requests")
        await shots(page, "too-many")


async def test_a_request_closed_unconfirmed(
        browser, settings, pool, time_skipping, task_queue, mail_sink, shots):  # noqa: F811 (fixtures)
    """The codes expire with the verification window: the request is closed, its status says so
    and so does its verify page (the e-mail's link opened late), which takes no code; both lead to
    a new request, as their words invite, and are as usable as any other page."""
    async with served_site(settings, pool, time_skipping.client, task_queue) as url:
        rid = await open_request(url, pool)
        await wait_for_letter(mail_sink, rid, "verification")
        await time_skipping.sleep(timedelta(days=7, hours=1))
        await wait_for_letter(mail_sink, rid, "closed_unverified")
        page, seen = await phone(browser)
        await page.goto(f"{url}/portal/requests/{rid}")
        await assert_usable(page, seen, "en", "Your request")
        await expect(page.locator("#status-words")).to_contain_text("not confirmed in time")
        await page.get_by_role("link", name="Send a new request").click()
        await assert_usable(page, seen, "en", "Ask about your personal data")
        await page.goto(verification_link(await wait_for_letter(mail_sink, rid, "verification")))
        await assert_usable(page, seen, "en", "Confirm it is you")
        await expect(page.locator("#status-words")).to_have_text(
            "This request was closed because it was not confirmed in time. You are welcome to send a new one.")
        await expect(page.locator("main")).not_to_contain_text("There is nothing to confirm")
        await expect(page.locator("#code")).to_have_count(0)
        await expect(page.get_by_role("button")).to_have_count(0)
        await shots(page, "closed")
        await page.get_by_role("link", name="Send a new request").click()
        await expect(page).to_have_url(f"{url}/portal")
        await assert_usable(page, seen, "en", "Ask about your personal data")


# The letters' words a web page cannot say of itself (the LGPD's "keep this e-mail for that purpose").
_THIS_EMAIL = {"en": "this e-mail", "nl": "deze e-mail", "fr": "cet e-mail", "de": "diese E-Mail"}
_WORKING_ON_IT = ("We had to answer your request by %(date)s, and we have not yet done so. We are sorry. We are "
                  "still working on it, and will answer as soon as we can.")
_WAITING_FOR_YOU = ("We had to answer your request by %(date)s, and we have not yet done so: we are waiting for you "
                    "to confirm that the request is yours, and cannot act on it until you do. To confirm it, enter "
                    "the code from our e-mail or follow the link in it; we will then answer as soon as we can.")


async def test_a_request_past_its_due_date_says_we_are_late_and_how_to_withdraw(
        browser, site, pool, settings, shots):  # noqa: F811 (fixtures)
    """An open request whose due date (its current one) has passed, judged by the controller's
    today: the status page says we had to answer by then and have not, that we are sorry, and
    where the subject may complain (the policy's remedies for its law, as the letters give them:
    a law that grants an appeal, and the UK GDPR, as a letter that offers none says it), under
    every law, waiting for compliance's approval or in progress, in each language; never "keep this
    e-mail", which the LGPD's letters say (`complaint_on_portal`); the authority's address upright,
    as in the letters. On the due date
    itself the page still says "We answer by". One the subject has not confirmed yet says we wait
    for them and how to confirm (it said "We are still working on it"), unless its month has not
    started (UK GDPR): then it is not late. An open request says how to withdraw it; a closed
    one does not. Before, the page said "We answer by" a day gone, and nothing of a withdrawal."""
    loaded = policy_of(settings)
    today = controller_today(settings)
    countries = {"gdpr": "BE", "uk_gdpr": "GB", "lgpd": "BR", "pipeda": "CA"}
    regimes = list(loaded.policy.remedies)
    page, seen = await phone(browser)

    async def opened(regime: str, status: str, due: date) -> str:
        rid = await stored_request(pool, settings, f"portal.late.{regime}", "erasure", regime=regime)
        await pool.execute("UPDATE dsr_requests SET status = $2, current_due_date = $3, country = $4 WHERE id = $1",
                           uuid.UUID(rid), status, due, countries.get(regime, "US"))
        return rid

    # Each law in one language (in turn), the GDPR's in each; the GDPR's awaits approval.
    shown = [(regime, LANGUAGES[n % len(LANGUAGES)]) for n, regime in enumerate(regimes)]
    shown += [("gdpr", language) for language in LANGUAGES if ("gdpr", language) not in shown]
    late = {regime: await opened(regime, "awaiting_approval" if regime == "gdpr" else "in_progress",
                                 today - timedelta(days=1)) for regime in regimes}
    for regime, language in shown:
        t = translations(language)
        remedies = loaded.in_language(language).remedies_for(regime, countries.get(regime, "US"))
        complaint = remedies.portal_complaint()
        await page.goto(f"{site}/portal/requests/{late[regime]}?lang={language}")
        await assert_usable(page, seen, language, "Your request")
        said = page.locator("#late")
        await expect(said.get_by_role("heading", level=2)).to_have_text(t.gettext("Our answer is late"))
        await expect(said).to_contain_text(t.gettext(_WORKING_ON_IT) % {
            "date": longdate(today - timedelta(days=1), language)})
        await expect(said.get_by_role("heading", level=3)).to_have_text(
            t.gettext("Your right to complain to %(authority)s") % {"authority": remedies.authority_title})
        await expect(said).to_contain_text(" ".join(complaint.split()))
        await expect(said).not_to_contain_text(_THIS_EMAIL[language])
        await expect(said.locator("address")).to_contain_text(remedies.authority.name)
        # Upright, as the letters set it: not the browser's italics for <address>.
        assert await said.locator("address").evaluate("e => getComputedStyle(e).fontStyle") == "normal"
        await expect(said.get_by_role("link", name=remedies.authority.website)).to_have_count(1)
        await expect(page.locator("dt", has_text=t.gettext("We had to answer by"))).to_have_count(1)
        if regime == "gdpr":
            await expect(page.locator("#status-words")).to_have_text(
                t.gettext(STATUS_WORDS[RequestStatus.awaiting_approval][0]))
        await expect(page.locator("#withdraw")).to_contain_text(PRIVACY_EMAIL)
    await shots(page, "late")

    # Not yet confirmed by the subject: under the GDPR, whose time runs from receipt all the same,
    # late, but we wait for them, and the page says how to confirm (it said "We are still working on
    # it"); a UK GDPR request's month has not started, so it is not late at all.
    unconfirmed = {regime: await opened(regime, "awaiting_verification", today - timedelta(days=1))
                   for regime in ("gdpr", "uk_gdpr")}
    for language in ("en", "fr"):
        t = translations(language)
        await page.goto(f"{site}/portal/requests/{unconfirmed['gdpr']}?lang={language}")
        await assert_usable(page, seen, language, "Your request")
        said, day = page.locator("#late"), {"date": longdate(today - timedelta(days=1), language)}
        await expect(said.get_by_role("heading", level=2)).to_have_text(t.gettext("Our answer is late"))
        await expect(said).to_contain_text(t.gettext(_WAITING_FOR_YOU) % day)
        await expect(said).not_to_contain_text(t.gettext(_WORKING_ON_IT) % day)
        await expect(said.get_by_role("heading", level=3)).to_have_count(1)  # the right to complain of it
        await expect(page.get_by_role("link", name=t.gettext("Enter the code from our e-mail"))).to_have_count(1)
    await page.goto(f"{site}/portal/requests/{unconfirmed['uk_gdpr']}?lang=en")
    await assert_usable(page, seen, "en", "Your request")
    await expect(page.locator("#late")).to_have_count(0)
    await expect(page.locator("#due-date")).to_have_text(
        "We will answer within one month of the day you confirm your identity, at the latest.")

    # Due today, and answered: neither is late; only the open one says how to withdraw it.
    due_today = await opened("gdpr", "in_progress", today)
    await page.goto(f"{site}/portal/requests/{due_today}?lang=en")
    await assert_usable(page, seen, "en", "Your request")
    await expect(page.locator("#late")).to_have_count(0)
    await expect(page.locator("dt", has_text="We answer by")).to_have_count(1)
    await expect(page.locator("#withdraw")).to_have_text(
        f"To withdraw this request, reply to our e-mail or write to {PRIVACY_EMAIL}, quoting its reference, "
        f"{short_reference(due_today)}. We will confirm by e-mail once we have closed it.")
    await expect(page.locator("#withdraw").get_by_role("link", name=PRIVACY_EMAIL)).to_have_attribute(
        "href", f"mailto:{PRIVACY_EMAIL}")
    answered = await opened("gdpr", "completed", today - timedelta(days=1))
    await page.goto(f"{site}/portal/requests/{answered}?lang=en")
    await assert_usable(page, seen, "en", "Your request")
    await expect(page.locator("#late")).to_have_count(0)
    await expect(page.locator("#withdraw")).to_have_count(0)

