"""The request page while no worker runs, in a real browser: compliance sees that the request's
workflow is not answering, and "Extend" is refused within seconds, saying nothing was done,
instead of spinning until a worker came back (and then extending with nobody waiting). Once a
worker runs, the notice goes by itself (the page keeps polling) and the same press extends the
deadline, once. With the workflow engine itself down, the page and a press say that instead, within
seconds. Same setup as tests/test_browser.py, its site served without a worker at first."""

from __future__ import annotations

import pytest
from playwright.async_api import expect
from temporalio.testing import WorkflowEnvironment

from devstack.processes import find_binary
from dsrflow.crypto.keys import load_keyring
from dsrflow.infra.temporal_client import build_data_converter
from tests.support import live_client, staff_headers, unique_email, wait_for_due_date
from tests.test_browser import CHROMIUM, served_site, shots, signed_in  # noqa: F401 (fixtures)
from tests.test_browser_actions import POLLS, press
from workers.dsr_worker import build_worker

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
REASON = "The request covers nine systems"


async def test_an_action_pressed_while_no_worker_answers_is_refused_and_works_once_one_does(
        browser, settings, pool, dev_server, task_queue, shots):  # noqa: F811
    async with served_site(settings, pool, dev_server.client, task_queue, worker=False) as site:
        async with live_client(base_url=site, timeout=30) as http:
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "erasure", "subject": {"email": unique_email("browser-no-worker")}})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]

        page = await signed_in(browser, site, pool, "compliance", f"/console/requests/{rid}")
        await expect(page.locator("#unanswered")).to_contain_text("Its workflow has not answered")
        await page.route(POLLS, lambda route: route.abort())  # no poll swaps the form under the typing hand
        form = page.locator('#live form[hx-post$="/extend"]')
        await form.get_by_label("Reason (sent to the subject)").fill(REASON)
        await form.get_by_role("button").click()
        await expect(page.locator("#extend-error")).to_contain_text("nothing was done", timeout=15_000)
        await shots(page, "refused")
        await page.unroute(POLLS)

        site_settings = settings.model_copy(update={"public_url": site, "task_queue": task_queue})
        async with build_worker(dev_server.client, site_settings, pool, task_queue=task_queue):
            await wait_for_due_date(pool, rid)
            await expect(page.locator("#unanswered")).to_have_count(0, timeout=30_000)
            await press(page, "extend", {"Reason (sent to the subject)": REASON}, flash="Deadline extended")
            await shots(page, "extended")
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1::uuid "
                               "AND event_type = 'deadline.extended'", rid) == 1


async def test_an_action_pressed_while_the_workflow_engine_is_down_says_so_in_words(
        browser, settings, pool, task_queue, shots):  # noqa: F811
    """The engine itself stopped, not only the workers: the request page says the workflow engine
    is not answering (not "is a worker running?"), and a press of Cancel is answered within seconds
    with a page saying so and to send the form again shortly, not a raw 503 nor a spinner for the
    SDK's 10 s of retries a call (dsrflow/infra/temporal_client.py ANSWERING)."""
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=str(find_binary("temporal")),
                                               data_converter=build_data_converter(load_keyring(settings)))
    # The site's API connects by itself, as `dsrflow api` does: its client's patience is the API's own.
    engine = settings.model_copy(update={"temporal_address": env.client.service_client.config.target_host})
    async with served_site(engine, pool, None, task_queue, worker=False) as site:
        async with live_client(base_url=site, timeout=30) as http:
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "erasure", "subject": {"email": unique_email("browser-engine-down")}})
        assert r.status_code == 201, r.text
        await env.shutdown()

        page = await signed_in(browser, site, pool, "agent", f"/console/requests/{r.json()['id']}")
        await expect(page.locator("#unanswered")).to_contain_text("The workflow engine is not answering")
        await page.route(POLLS, lambda route: route.abort())  # no poll swaps the form under the typing hand
        form = page.locator('#live form[hx-post$="/cancel"]')
        await form.get_by_label("Reason (sent to the subject)").fill("Withdrawn by phone")
        await form.get_by_label("The subject withdrew it themselves").check()
        await form.get_by_role("button").click()
        # Well within the SDK's 10 s a call; generous for a loaded machine (the speed is bench/'s).
        main = page.locator("main")
        await expect(main.locator("h1")).to_have_text("Service briefly unavailable", timeout=8_000)
        await expect(main).to_contain_text("The workflow engine is not answering at the moment; try again in 5 seconds.")
        await expect(main).to_contain_text("send the form again in a few seconds")
        await shots(page, "engine-down")
    assert await pool.fetchval("SELECT status FROM dsr_requests WHERE id = $1::uuid", r.json()["id"]) \
        == "awaiting_verification"
