"""The subject confirms their request while no worker runs, in a real browser: "Confirm" answers
within seconds that the request is paused on our side (it waited for a worker without end), and
nothing is spent: once a worker runs, the same code, typed again, confirms it. Same setup as
tests/test_browser.py, its site served without a worker of its own."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.support import live_client, staff_headers, unique_email, verification_code, wait_for_letter
from tests.test_browser import CHROMIUM, served_site, shots  # noqa: F401 (fixtures)
from workers.dsr_worker import build_worker

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


async def test_a_code_confirmed_while_no_worker_answers_is_paused_and_confirms_once_one_does(
        browser, settings, pool, dev_server, task_queue, mail_sink, shots):  # noqa: F811
    async with served_site(settings, pool, dev_server.client, task_queue, worker=False) as site:
        site_settings = settings.model_copy(update={"public_url": site, "task_queue": task_queue})
        async with build_worker(dev_server.client, site_settings, pool, task_queue=task_queue):
            async with live_client(base_url=site, timeout=30) as http:
                r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                    "type": "erasure", "subject": {"email": unique_email("portal-no-worker")}})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))

        subject = await (await browser.new_context()).new_page()
        await subject.goto(f"{site}/portal/requests/{rid}/verify")
        await subject.get_by_label("Code from the e-mail").fill(code)
        await subject.get_by_role("button", name="Confirm").click()
        await expect(subject.locator("#paused")).to_contain_text("We cannot take your code just now", timeout=15_000)
        await expect(subject.locator("#paused")).to_contain_text("Please try again later.")
        await shots(subject, "paused")

        async with build_worker(dev_server.client, site_settings, pool, task_queue=task_queue):
            await subject.goto(f"{site}/portal/requests/{rid}/verify")
            await subject.get_by_label("Code from the e-mail").fill(code)
            await subject.get_by_role("button", name="Confirm").click()
            await expect(subject).to_have_url(f"{site}/portal/requests/{rid}")
            await expect(subject.get_by_role("status")).to_contain_text("you have confirmed that the request is yours")
            await shots(subject, "confirmed")
