"""The subject's portal as people use it in a real browser (Debian's Chromium), on a phone-width
screen (360 px), in each of its languages, with the keyboard alone, and as a screen reader reads
it. Every page and state the portal shows is opened: the request form (each request type, each
error), the status lookup (found, not found), the status page, the verify page (its code form,
the e-mail's link as a mail scanner opens it, a wrong code, a code that is no code), the package
page (valid, downloaded, expired, deleted, unknown) and the request-not-found page; the pages of a
request that did not go as asked (too many wrong codes, too many requests, sent from another
website, an appeal we cannot open, closed unconfirmed, past its due date) are opened by
tests/test_browser_portal_access_states.py, with the same checks.

On each page (`assert_usable`): `<html lang>` is the language shown, one `<h1>`, a `<title>`
that starts with it; every form control has a `<label for>` or an `aria-label`; every error is
tied to its field (`aria-describedby` and `aria-invalid`) and announced (in a `role=alert`, or
described by the focused field); after a refused submit the focus is on the error summary or the
first invalid field; nothing is wider than the screen; and the browser saw no console error, no
script error, no CSP violation and no failed request. With the keyboard (`tab_to`), each Tab
lands on something that shows its focus. Same setup as tests/test_browser.py."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Page, expect

from api.public.status_words import STATUS_WORDS
from dsrflow.crypto.hashing import token_hash
from dsrflow.domain.references import short_reference
from dsrflow.i18n import translations
from dsrflow.stores.kept_copies import ERASED
from schemas.requests import RequestStatus
from tests.browser_access import LANGUAGES, PRIVACY_EMAIL, assert_usable, errors_of, phone, tab_to, type_in
from tests.support import (
    eventually,
    letters_for,
    stored_request,
    text_of,
    unique_email,
    verification_code,
    verification_link,
    wait_for_letter,
)
from tests.test_browser import CHROMIUM, open_request, shots, site  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


async def refused_form(page: Page, seen: list[str], language: str, fields: dict[str, str],
                       expected: Iterable[str]) -> None:
    """Fill the request form with `fields` and send it; the page refuses it naming `expected`, and
    each of its summary's links leads the focus to a control of that field."""
    await page.goto(page.url.split("/portal")[0] + "/portal")  # a new form: the last one's values kept
    for name, value in fields.items():
        if name == "type":
            await page.locator(f'input[name=type][value="{value}"]').check()
        elif name == "language":  # no field: only a crafted post says another
            await page.locator("input[name=language]").evaluate("(input, v) => input.value = v", value)
        elif name == "country":  # a list: only a crafted post names a country it does not hold
            await page.locator("#country").evaluate("(list, v) => { list.add(new Option(v, v)); list.value = v; }",
                                                    value)
        else:
            await page.locator(f"#{name}").fill(str(value))
    await page.locator("form[action='/portal/requests'] button[type=submit]").click()
    page_said = await assert_usable(page, seen, language, "Ask about your personal data", refused=True)
    assert errors_of(page_said) == [f"{field}-error" for field in expected], page_said["errors"]
    for field in expected:
        said = (await page.locator(f"#{field}-error").text_content()).split(":", 1)[1].strip()
        await page.locator(".error-summary a").filter(has_text=said).click()
        inside = await page.evaluate("f => { const el = document.getElementById(f); const a = document.activeElement;"
                                     " return !!el && (el === a || el.contains(a)); }", field)
        assert inside, f"the summary's link for {field} leaves the focus on " + await page.evaluate(
            "document.activeElement.outerHTML.slice(0, 120)")


async def packages(pool, settings) -> dict[str, str]:
    """Package links in each state a letter's link can be in: valid, expired, deleted."""
    rid = await stored_request(pool, settings, "access-pkg")
    tokens = {"valid": secrets.token_hex(32), "expired": secrets.token_hex(32), "deleted": secrets.token_hex(32)}
    for state, token in tokens.items():
        expires = datetime.now(UTC) + (timedelta(minutes=-1) if state == "expired" else timedelta(days=7))
        await pool.execute(
            """INSERT INTO packages (id, request_id, kind, path, size_bytes, records, token_hash, expires_at,
                                     purged_at, purge_reason)
               VALUES ($1, $2, 'access', '/nonexistent', 20480, 42, $3, $4, $5, $6)""",
            uuid.uuid4(), rid, token_hash(token), expires,
            datetime.now(UTC) if state == "deleted" else None, ERASED if state == "deleted" else None)
    return tokens


@pytest.mark.parametrize("language", LANGUAGES)
async def test_every_page_at_phone_width_in_each_language(
        browser, site, pool, settings, mail_sink, language, shots):  # noqa: F811 (fixtures)
    # A browser that speaks the language too: the public API's pages (an older letter's link)
    # are out of the portal's cookie's path, so the browser's Accept-Language is what they read.
    page, seen = await phone(browser, locale=language)
    t = translations(language)
    await page.goto(f"{site}/portal?lang={language}")
    await assert_usable(page, seen, language, "Ask about your personal data")
    await shots(page, "form")

    # Each request type's part of the form shows once chosen, its controls labelled.
    parts = {"rectification": "#corrections", "restriction": "#restriction_grounds", "objection": "#objection_scope"}
    for kind in ("access", "rectification", "erasure", "restriction", "objection", "portability"):
        await page.locator(f'input[name=type][value="{kind}"]').check()
        for shown, part in parts.items():
            await (expect(page.locator(part)).to_be_visible() if shown == kind else
                   expect(page.locator(part)).to_be_hidden())
        await assert_usable(page, seen, language, "Ask about your personal data")
    await shots(page, "form-objection")

    # Each error the form can give, each tied to its field, the summary focused.
    await refused_form(page, seen, language, {}, ["type", "email"])
    await shots(page, "refused")
    await refused_form(page, seen, language, {"type": "rectification", "email": "ada@example.com",
                                              "name": "A" * 201, "country": "ZZ", "other_corrections": "no colon"},
                       ["name", "country", "corrections"])
    await refused_form(page, seen, language, {"type": "restriction", "email": "ada@example.com"},
                       ["restriction_grounds"])
    await refused_form(page, seen, language, {"type": "objection", "email": "ada@example.com"}, ["objection_scope"])
    await refused_form(page, seen, language, {"type": "access", "email": "ada@example.com", "language": "xx"},
                       ["language"])
    await shots(page, "refused-language")

    # The status lookup: a reference we do not know.
    await page.goto(f"{site}/portal")
    await page.locator("#reference").fill("NOTAREF999")
    await page.locator("form[action='/portal/status'] button").click()
    page_said = await assert_usable(page, seen, language, "Ask about your personal data", refused=True)
    assert errors_of(page_said) == ["reference-error"]
    await shots(page, "lookup-refused")

    # A request: its status, its verify page, as the e-mail's link opens it (a mail scanner
    # confirms nothing), a wrong code, a code that is no code.
    rid = await open_request(site, pool)
    letter = await wait_for_letter(mail_sink, rid, "verification")
    await page.goto(f"{site}/portal/requests/{rid}")
    await assert_usable(page, seen, language, "Your request")
    await expect(page.locator("#status-words")).to_have_text(
        t.gettext(STATUS_WORDS[RequestStatus.awaiting_verification][0]))
    await shots(page, "status")
    await page.goto(verification_link(letter))
    await assert_usable(page, seen, language, "Confirm it is you")
    assert await pool.fetchval("SELECT verified_at FROM dsr_requests WHERE id = $1", rid) is None
    await shots(page, "link")
    wrong = "000000" if verification_code(letter) != "000000" else "111111"
    for typed in (wrong, "abc"):
        await page.locator("#code").fill(typed)
        await page.locator("form:has(#code) button").click()
        page_said = await assert_usable(page, seen, language, "Confirm it is you", refused=True)
        assert errors_of(page_said) == ["code-error"]
    await shots(page, "wrong-code")
    # The forms stand apart: "No e-mail, or the code no longer works?" and the reference below the
    # new code's button read as stuck to the control above them.
    for above, below in (("form:has(#code)", "form[action$='/resend']"), ("form[action$='/resend']", "#reference-hint")):
        top = await page.locator(below).evaluate("e => e.getBoundingClientRect().top")
        bottom = await page.locator(above).evaluate("e => e.getBoundingClientRect().bottom")
        assert top - bottom >= 12, (above, below, top - bottom)
    await page.locator("#code").fill(verification_code(letter))
    await page.locator("form:has(#code) button").click()
    await expect(page).to_have_url(f"{site}/portal/requests/{rid}")
    await assert_usable(page, seen, language, "Your request")
    await expect(page.get_by_role("status")).to_have_text(
        t.gettext("Thank you: you have confirmed that the request is yours."))
    await page.goto(f"{site}/portal/requests/{rid}/verify")
    await assert_usable(page, seen, language, "Confirm it is you")  # nothing left to confirm

    # The package page, and the problem pages of its link and of an unknown request.
    links = await packages(pool, settings)
    await page.goto(f"{site}/portal/packages/{links['valid']}")
    await assert_usable(page, seen, language, "Your data")
    await shots(page, "package")
    await page.goto(f"{site}/v1/public/packages/{links['valid']}")  # an older letter's link
    await expect(page).to_have_url(f"{site}/portal/packages/{links['valid']}")
    for state, title in (("expired", "Link expired"), ("deleted", "Package deleted")):
        await page.goto(f"{site}/portal/packages/{links[state]}")
        await assert_usable(page, seen, language, title)
        # Expired, the page says how to ask for a new link, as the letter did; deleted with the
        # subject's data, there is none to ask for.
        write = page.locator("main").get_by_role("link", name=PRIVACY_EMAIL)
        await expect(write).to_have_count(1 if state == "expired" else 0)
        if state == "expired":
            await expect(write).to_have_attribute("href", f"mailto:{PRIVACY_EMAIL}")
            said = t.gettext('Write to us at <a href="mailto:%(email)s">%(email)s</a> and we will send you a new one.')
            await expect(page.locator("main")).to_contain_text(re.sub(r"<[^>]+>", "", said % {"email": PRIVACY_EMAIL}))
        await page.goto(f"{site}/v1/public/packages/{links[state]}")
        await assert_usable(page, seen, language, title)
    await page.goto(f"{site}/portal/packages/{secrets.token_hex(32)}")
    await assert_usable(page, seen, language, "Not found")
    await page.goto(f"{site}/portal/requests/{uuid.uuid4()}")
    await assert_usable(page, seen, language, "Request not found")
    await shots(page, "not-found")


async def test_the_whole_flow_with_the_keyboard_alone(browser, site, pool, mail_sink, shots):  # noqa: F811 (fixtures)
    """Tab, Enter, Space and a radio group's arrows alone, from the form to the package's
    download, every stop showing its focus."""
    page, seen = await phone(browser, accept_downloads=True)
    await page.goto(f"{site}/portal")

    # The skip link comes first, and leads past the header.
    await tab_to(page, "a.skip", limit=1)
    await page.keyboard.press("Enter")
    await tab_to(page, "input[name=type]", limit=3)

    # A form sent with nothing chosen: the summary takes the focus, its link leads to the field.
    await tab_to(page, "form[action='/portal/requests'] button[type=submit]")
    await page.keyboard.press("Enter")
    await assert_usable(page, seen, "en", "Ask about your personal data", refused=True)
    await tab_to(page, '.error-summary a[href^="#type"]')
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.name") == "type"
    await shots(page, "refused")

    # A restriction: the radio moved with the arrows, the part for it shows, a ground ticked with Space.
    await page.keyboard.press("Space")  # the first type, then onwards to restriction
    while await page.evaluate("document.activeElement.value") != "restriction":
        await page.keyboard.press("ArrowDown")
    await type_in(page, "#email", unique_email("keyboard"))
    await type_in(page, "#country", "Belgium")  # the list's type-ahead, as a keyboard user picks
    await tab_to(page, "input[name=restriction_grounds]")
    await page.keyboard.press("Space")
    await tab_to(page, "form[action='/portal/requests'] button[type=submit]")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"/portal/requests/[0-9a-f-]{36}/verify$"))
    rid = re.search(r"/requests/([0-9a-f-]{36})/verify", page.url).group(1)
    await assert_usable(page, seen, "en", "Confirm it is you")
    await shots(page, "verify")

    # A new code, by keyboard, then that code typed in.
    await wait_for_letter(mail_sink, rid, "verification")
    await tab_to(page, "form[action$='/resend'] button")
    await page.keyboard.press("Space")
    await expect(page.get_by_role("status")).to_contain_text("We have sent you a new code and link.")
    await assert_usable(page, seen, "en", "Confirm it is you")

    async def two() -> bool:
        return len(letters_for(mail_sink, rid, "verification")) == 2

    await eventually(two)
    code = verification_code(letters_for(mail_sink, rid, "verification")[-1])
    await type_in(page, "#code", code)
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{site}/portal/requests/{rid}")
    await expect(page.get_by_role("status")).to_contain_text("you have confirmed")
    await assert_usable(page, seen, "en", "Your request")

    # The language, by keyboard: Dutch, then the lookup by reference from the front page.
    await tab_to(page, 'a[hreflang="nl"]')
    await page.keyboard.press("Enter")
    await assert_usable(page, seen, "nl", "Your request")
    reference = await page.locator("#reference").text_content()
    await page.goto(f"{site}/portal")
    await type_in(page, "#reference", reference.lower())
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{site}/portal/requests/{rid}")
    await assert_usable(page, seen, "nl", "Your request")
    await shots(page, "status-nl")

    # A package, downloaded with the keyboard; its page afterwards.
    pid = await open_request(site, pool, type="portability", identity_attested=True)
    letter = text_of(await wait_for_letter(mail_sink, pid, "response", timeout=60))
    link = re.search(r"http://\S+/portal/packages/[0-9a-f]{64}", letter).group(0)
    await page.goto(f"{link}?lang=en")
    await assert_usable(page, seen, "en", "Your data")
    await tab_to(page, "main button[type=submit]")
    async with page.expect_download() as download:
        await page.keyboard.press("Enter")
    # Named by the reference its letters quote (api/public/intake.py `downloaded`), not the internal id.
    assert (await download.value).suggested_filename == f"portability-{short_reference(pid)}.zip"
    downloads = "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = 'package.downloaded'"

    async def downloaded_once() -> bool:
        # The browser reports the download when it starts; the API records it as the body is sent.
        return await pool.fetchval(downloads, pid) == 1

    await eventually(downloaded_once, timeout=30)
    await page.reload()
    await assert_usable(page, seen, "en", "Your data")
    await shots(page, "downloaded")


