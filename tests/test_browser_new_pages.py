"""Today's new pages as a person with a browser meets them (Debian's Chromium): the "Page not
found" a mistyped address shows, in the portal (each language, 360 px, keyboard and mouse) and in
the console; and the request page of a request whose workflow code fails at every try, its notice
announced and an action's refusal shown in the page's words. Same setup as tests/test_browser.py."""

from __future__ import annotations

import pytest
from playwright.async_api import expect
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from api.missing_pages import NOT_FOUND_DETAIL
from dsrflow.i18n import translations
from schemas.workflow import workflow_id_for
from tests.browser_access import LANGUAGES, assert_usable, phone, tab_to
from tests.support import live_client, staff_headers, unique_email
from tests.test_browser import CHROMIUM, served_site, shots, signed_in, site  # noqa: F401 (fixtures)
from tests.test_browser_actions import POLLS
from tests.test_failing_workflow import BrokenRequestWorkflow, _failing

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_portal_says_page_not_found_and_leads_back_by_keyboard_and_mouse(
        browser, site, language, shots):  # noqa: F811 (fixtures)
    page, seen = await phone(browser, locale=language)
    t = translations(language)
    start = t.gettext("Back to the start")
    for mistyped in ("/portal/nope", "/v1/public/requets"):
        answer = await page.goto(f"{site}{mistyped}")
        assert answer is not None and answer.status == 404
        await assert_usable(page, seen, language, "Page not found")  # the portal's layout, 360 px wide
        await expect(page.get_by_role("alert")).to_have_text(t.gettext(NOT_FOUND_DETAIL))
        await expect(page.locator("header")).to_be_visible()  # the portal's own header, its language links
    await shots(page, "not-found")

    # The keyboard: the skip link first, then the way back, each stop showing its focus.
    await tab_to(page, "a.skip", limit=1)
    await page.keyboard.press("Enter")
    await tab_to(page, "main a[href='/portal']", limit=3)
    assert (await page.evaluate("document.activeElement.textContent")).strip() == start
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{site}/portal")
    await assert_usable(page, seen, language, "Ask about your personal data")

    # The mouse.
    await page.goto(f"{site}/portal/nope")
    await page.get_by_role("link", name=start).click()
    await expect(page).to_have_url(f"{site}/portal")
    await assert_usable(page, seen, language, "Ask about your personal data")


async def test_the_console_says_page_not_found_to_a_signed_in_agent(browser, site, pool, shots):  # noqa: F811
    page = await signed_in(browser, site, pool, "agent", "/console/")
    answer = await page.goto(f"{site}/console/requets")
    assert answer is not None and answer.status == 404
    await expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    await expect(page).to_have_title("Page not found · dsrflow")
    await expect(page.get_by_role("alert")).to_contain_text("There is no page of the console at this address")
    await expect(page.get_by_role("banner").get_by_role("link", name="dsrflow console")).to_be_visible()
    # The console's header, as on any of its pages: who is signed in, its links, Sign out.
    await expect(page.get_by_role("banner")).to_contain_text("Signed in as agent")
    await expect(page.get_by_role("banner").get_by_role("link", name="Inbox")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await shots(page, "console-not-found")
    await tab_to(page, "main a[href='/console/']")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{site}/console/")
    await page.goto(f"{site}/console/requets")
    await page.get_by_role("link", name="Back to the queue").click()
    await expect(page).to_have_url(f"{site}/console/")


async def test_a_request_whose_workflow_fails_says_so_and_an_action_shows_the_refusal(
        browser, settings, pool, dev_server, task_queue, shots):  # noqa: F811
    async with (served_site(settings, pool, dev_server.client, task_queue, worker=False) as site,  # noqa: F811
                Worker(dev_server.client, task_queue=task_queue, workflows=[BrokenRequestWorkflow],
                       workflow_runner=UnsandboxedWorkflowRunner())):
        async with live_client(base_url=site, timeout=30) as http:
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "access", "subject": {"email": unique_email("browser-failing")}})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        await _failing(dev_server.client, rid)

        page = await signed_in(browser, site, pool, "compliance", f"/console/requests/{rid}")
        notice = page.get_by_role("status").filter(has_text="fails each time it")
        await expect(notice).to_be_visible(timeout=30_000)
        await expect(notice).to_contain_text("an error in the worker's code, not in this request")
        await shots(page, "failing")

        await page.route(POLLS, lambda route: route.abort())  # no poll swaps the form under the typing hand
        form = page.locator('#live form[hx-post$="/extend"]')
        await form.get_by_label("Reason (sent to the subject)").fill("Nine systems and many years of records")
        await form.get_by_role("button").click()
        refusal = page.locator("#extend-error")
        await expect(refusal).to_contain_text("fails each time it tries to carry on", timeout=30_000)
        await expect(refusal).to_contain_text("nothing was done")
        await expect(refusal).not_to_contain_text("{")  # words, not the problem's JSON
        await expect(refusal).to_be_visible()
        await shots(page, "refused")
        await dev_server.client.get_workflow_handle(workflow_id_for(rid)).terminate("test over")
