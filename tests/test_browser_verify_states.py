"""The verify page opened again (a reload, the e-mail's link) in a real browser, in the two states
only the workflow knows: every code the request allows has been sent, and too many wrong codes
have locked the current one. The page worked them out only when answering a button, so a reload
offered a "Send me a new code" that the workflow refuses (409), or a code form that refuses every
code (423) and spends the subject's allowance. And the page an earlier e-mail's link gets before
any lock (410, workflows/verification.py EARLIER_LINK), whose "Send me a new code" and code form
are pressed there. Same setup as tests/test_browser.py."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from api.ratelimit import wait_words
from dsrflow.i18n import translations
from tests.support import eventually, letters_for, verification_code, verification_link, wait_for_letter
from tests.test_browser import CHROMIUM, five_wrong_codes, open_request, served_site, shots, site  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")

NO_MORE_CODES = "We have sent all the codes we can for this request, so we cannot send another."
LOCKED = "For your protection, the code from our e-mail no longer works: too many wrong codes were typed."
LINK_WORKS = "The link in our latest e-mail still works: open it to confirm that the request is yours."
EARLIER = "This link is from an earlier e-mail: it no longer works."
NEW_CODE_SENT = "We have sent you a new code and link."


async def earlier_links_page(subject, letter) -> None:
    """The page the button of `letter`'s link answers with, a newer code sent since: an earlier
    e-mail's link, no attempt counted (410)."""
    await subject.goto(verification_link(letter))
    async with subject.expect_response(lambda answer: answer.request.method == "POST") as answered:
        await subject.get_by_role("button", name="Yes, I made this request").click()
    assert (await answered.value).status == 410
    await expect(subject.get_by_role("heading", level=1)).to_have_text("Confirm it is you")


async def test_a_reload_after_the_last_code_offers_no_new_code(
        browser, settings, pool, dev_server, task_queue, mail_sink, shots):  # noqa: F811 (fixtures)
    # Every press here comes from 127.0.0.1: more new codes than the default limits allow it
    # (tests/test_ratelimit.py tests those); the workflow's own cap (`verification.max_codes`, 5)
    # is what this test reaches.
    generous = settings.model_copy(update={"rate_resend_per_ip": "10000/hour",
                                           "rate_resend_per_request": "10000/hour"})
    async with served_site(generous, pool, dev_server.client, task_queue) as url:
        rid = await open_request(url, pool)
        first = await wait_for_letter(mail_sink, rid, "verification")
        subject = await (await browser.new_context()).new_page()
        verify = f"{url}/portal/requests/{rid}/verify"
        await subject.goto(verify)
        await subject.get_by_role("button", name="Send me a new code").click()
        await expect(subject.get_by_role("status")).to_contain_text(NEW_CODE_SENT)

        # The first e-mail's button, a newer code sent since and no lock: refused as an earlier
        # e-mail's link, with the ways on, and its "Send me a new code" sends one.
        await earlier_links_page(subject, first)
        await expect(subject.get_by_role("alert")).to_have_text(f"{EARLIER} {LINK_WORKS} Or ask for a new code below.")
        await expect(subject.get_by_label("Code from the e-mail")).to_be_visible()
        await shots(subject, "earlier-link")
        await subject.get_by_role("button", name="Send me a new code").click()
        await expect(subject.get_by_role("status")).to_contain_text(NEW_CODE_SENT)
        await expect(subject.get_by_role("alert")).to_have_count(0)
        await expect(subject.get_by_label("Code from the e-mail")).to_be_visible()

        async def three_codes_sent() -> bool:
            return len(letters_for(mail_sink, rid, "verification")) == 3

        await eventually(three_codes_sent)
        for _ in range(2):  # two more: five codes in all
            await subject.get_by_role("button", name="Send me a new code").click()
            await expect(subject.get_by_role("status")).to_contain_text(NEW_CODE_SENT)

        async def five_codes_sent() -> bool:
            return len(letters_for(mail_sink, rid, "verification")) == 5

        await eventually(five_codes_sent)
        last = letters_for(mail_sink, rid, "verification")[-1]

        for opened in (verify, verification_link(last)):
            await subject.goto(opened)
            await expect(subject.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
            await expect(subject.get_by_role("button", name="Send me a new code")).to_have_count(0)
            await expect(subject.locator("#no-more-codes")).to_contain_text(NO_MORE_CODES)
            await expect(subject.locator("#no-more-codes")).to_contain_text("please reply to our e-mail or write to us")
            await expect(subject.get_by_label("Code from the e-mail")).to_be_visible()  # the last code still works
        await shots(subject, "no-more-codes")

        # And it does, typed on the page the first e-mail's button gets now (no new code offered
        # there either): the last code confirms the request.
        await earlier_links_page(subject, first)
        await expect(subject.get_by_role("alert")).to_contain_text(f"{EARLIER} {LINK_WORKS} {NO_MORE_CODES}")
        await expect(subject.get_by_role("button", name="Send me a new code")).to_have_count(0)
        await subject.get_by_label("Code from the e-mail").fill(verification_code(last))
        await subject.get_by_role("button", name="Confirm").click()
        await expect(subject).to_have_url(f"{url}/portal/requests/{rid}")
        await expect(subject.get_by_role("status")).to_have_text("Thank you: you have confirmed that the request is yours.")


async def test_a_reload_after_too_many_wrong_codes_shows_the_lock(browser, site, pool, mail_sink, shots):  # noqa: F811 (fixtures)
    rid = await open_request(site, pool)
    letter = await wait_for_letter(mail_sink, rid, "verification")
    code, link = verification_code(letter), verification_link(letter)
    subject = await (await browser.new_context()).new_page()
    verify = f"{site}/portal/requests/{rid}/verify"
    await subject.goto(verify)
    await five_wrong_codes(subject, code, "Confirm", ("4 attempts", "3 attempts", "2 attempts", "1 attempt"),
                           "You have %s left.")
    await expect(subject.get_by_role("alert")).to_contain_text("that was the last attempt")

    # Reloaded, then opened from the e-mail's link: the code's lock, and the buttons that work:
    # the link's (a lock is on the code alone) and a new code.
    for opened, link_button, says in ((verify, 0, f"{LOCKED} {LINK_WORKS} Or ask for a new code below."),
                                      (link, 1, LOCKED)):
        await subject.goto(opened)
        await expect(subject.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
        await expect(subject.get_by_role("alert")).to_have_text(says)
        await expect(subject.locator("#code")).to_have_count(0)
        await expect(subject.get_by_role("button", name="Confirm")).to_have_count(0)
        await expect(subject.get_by_role("button", name="Yes, I made this request")).to_have_count(link_button)
        await expect(subject.get_by_role("button", name="Send me a new code")).to_have_count(1)
    await shots(subject, "locked-reloaded")

    # The button works: a new code, and the form for it.
    await subject.get_by_role("button", name="Send me a new code").click()
    await expect(subject.get_by_role("status")).to_contain_text("We have sent you a new code and link.")
    await expect(subject.locator("#code")).to_have_count(1)



async def test_the_clients_last_code_for_now_then_a_new_code_confirms(
        browser, settings, pool, dev_server, task_queue, mail_sink):  # noqa: F811 (fixtures)
    """With the default limit of three codes an hour per request and client (below the code's five),
    three wrong codes: the page counts down what this browser has (two, one), then says it cannot
    try another from here for 60 minutes and offers the ways on; "Send me a new code" pressed,
    the new code confirms. Before, the page said "4 attempts", "3", "2", and the new code got the
    "Too many requests" page. In English, then the same in French (another request)."""
    limited = settings.model_copy(update={"rate_verify_per_request": "3/hour"})
    async with served_site(limited, pool, dev_server.client, task_queue) as url:
        for language in ("en", "fr"):
            t = translations(language)
            rid = await open_request(url, pool)
            first = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
            subject = await (await browser.new_context()).new_page()
            await subject.goto(f"{url}/portal/requests/{rid}/verify?lang={language}")
            confirm = subject.get_by_role("button", name=t.gettext("Confirm"), exact=True)
            wrong = "000000" if first != "000000" else "111111"
            left = [t.ngettext("You have %(num)d attempt left.", "You have %(num)d attempts left.", n) % {"num": n}
                    for n in (2, 1)]
            spent = t.gettext("That code is not right, and you cannot try another code from here for %(wait)s.") % {
                "wait": wait_words(3600, language)}
            ways_on = f"{t.gettext(LINK_WORKS)} {t.gettext('Or ask for a new code below.')}"
            for says in (*left, f"{spent} {ways_on}"):
                await subject.locator("#code").fill(wrong)
                await confirm.click()
                await expect(subject.get_by_role("alert")).to_have_text(f"{t.gettext('That code is not right.')} {says}"
                                                                        if says in left else says)

            await subject.get_by_role("button", name=t.gettext("Send me a new code")).click()
            await expect(subject.get_by_role("status")).to_contain_text(t.gettext(NEW_CODE_SENT))

            async def two_codes_sent(rid: str = rid) -> bool:
                return len(letters_for(mail_sink, rid, "verification")) == 2
            await eventually(two_codes_sent)
            [new] = {verification_code(m) for m in letters_for(mail_sink, rid, "verification")} - {first}
            await subject.locator("#code").fill(new)
            await confirm.click()
            await expect(subject).to_have_url(f"{url}/portal/requests/{rid}")
