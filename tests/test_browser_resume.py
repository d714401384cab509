"""The request page of a request whose workflow ended while it was open, in a real browser: an
agent sees why nothing works, no action offered, and that compliance can resume it; compliance and an admin press
"Resume the request" (a blank reason refused first) and the page's actions work again. Same setup
as tests/test_browser.py; the flag is written as the start sweep writes it
(activities/request_start_sweep.py), for this request alone: the sweep itself would look at every
test's ended workflows."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from dsrflow.domain.request_resume import ended_trouble_key
from schemas.workflow import workflow_id_for
from tests.test_browser import CHROMIUM, open_request, shots, signed_in, site  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
SLOW = 30_000  # ms: the worker's next steps after a resume


async def _stopped(dev_server, site: str, pool) -> str:  # noqa: F811
    """An unverified erasure whose workflow an operator terminated, flagged as the sweep flags it."""
    rid = await open_request(site, pool)
    handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))
    await handle.terminate("by mistake")
    run_id = (await handle.describe()).run_id
    await pool.execute(
        """INSERT INTO step_troubles (request_id, trouble_key, step, message, transient)
           VALUES ($1::uuid, $2, 'workflow', 'the request''s workflow terminated while the request was open; no step '
                   'of it runs any more until compliance resumes it from the request''s page', false)""",
        rid, ended_trouble_key(run_id))
    return rid


async def test_compliance_and_an_admin_resume_a_stopped_request_and_its_actions_work_again(
        browser, site, pool, dev_server, shots):  # noqa: F811
    first, second = await _stopped(dev_server, site, pool), await _stopped(dev_server, site, pool)

    agent = await signed_in(browser, site, pool, "agent", f"/console/requests/{first}")
    panel = agent.locator("#workflow-ended")
    await expect(panel.get_by_role("heading")).to_have_text("This request has stopped")
    await expect(panel).to_contain_text("workflow terminated while the request was open")
    await expect(panel).to_contain_text("Compliance can resume it from this page")
    await expect(agent.get_by_role("button", name="Resume the request")).to_have_count(0)
    # No action is offered while it is stopped: its workflow could take none (a press from a page
    # loaded before is refused, as over REST: tests/test_request_resume.py).
    await expect(agent.get_by_role("heading", name="Actions")).to_have_count(0)
    await expect(agent.get_by_role("button", name="Send a new code")).to_have_count(0)
    # The queue finds the stopped requests: its "Stopped" filter, each row marked so.
    await agent.goto(f"{site}/console/")
    await agent.get_by_label("Stopped (its workflow ended").check()
    await agent.get_by_role("button", name="Show").click()
    rows = agent.locator("#queue tbody tr")
    await expect(rows.filter(has=agent.locator(f'a[href="/console/requests/{first}"]'))).to_contain_text("stopped")
    await expect(rows.filter(has_not_text="stopped")).to_have_count(0)

    officer = await signed_in(browser, site, pool, "compliance", f"/console/requests/{first}")
    await officer.get_by_label("Why it may carry on now").fill("   ")
    await officer.get_by_role("button", name="Resume the request").click()
    await expect(officer.locator("#workflow-ended [role=alert]")).to_contain_text("reason")
    await officer.get_by_label("Why it may carry on now").fill("Terminated by mistake during maintenance")
    await officer.get_by_role("button", name="Resume the request").click()
    await expect(officer.locator("#workflow-ended .flash")).to_contain_text("Resumed")
    await expect(officer.get_by_role("button", name="Resume the request")).to_have_count(0)
    await expect(officer.locator(".timeline")).to_contain_text(
        "Resumed: its workflow carries on from where it stopped (it had been terminated: Terminated by mistake")
    await shots(officer, "resumed")
    await officer.get_by_role("button", name="Send a new code").click()
    await expect(officer.locator("#live .flash")).to_contain_text("A new code and link are sent", timeout=SLOW)

    admin = await signed_in(browser, site, pool, "admin", f"/console/requests/{second}")
    await admin.get_by_label("Why it may carry on now").fill("Terminated by mistake during maintenance")
    await admin.get_by_role("button", name="Resume the request").click()
    await expect(admin.locator("#workflow-ended .flash")).to_contain_text("Resumed")
    assert await pool.fetchval("SELECT count(*) FROM step_troubles WHERE request_id = ANY($1::uuid[]) "
                               "AND resolved_at IS NULL", [first, second]) == 0


async def test_the_subject_of_a_stopped_request_is_told_it_is_paused_and_offered_nothing_that_fails(
        browser, site, pool, dev_server, shots):  # noqa: F811
    """The subject opens their e-mail's verification page while their request is stopped: it says
    the request is paused, with no code form and no "Send me a new code" (neither could work); its
    link to the status page leads to the same words there, with no code to enter."""
    rid = await _stopped(dev_server, site, pool)
    subject = await (await browser.new_context()).new_page()
    await subject.goto(f"{site}/portal/requests/{rid}/verify")
    await expect(subject.locator("#paused")).to_contain_text("your request is paused while we put right a problem")
    for button in ("Confirm", "Send me a new code", "Yes, I made this request"):
        await expect(subject.get_by_role("button", name=button)).to_have_count(0)
    await expect(subject.get_by_label("Code from the e-mail")).to_have_count(0)
    await shots(subject, "verify-paused")
    await subject.get_by_role("link", name="See the status of your request").click()
    await expect(subject.locator("#status-words")).to_have_text(
        "Your request is paused while we put right a problem on our side. "
        "Your request is kept, and its deadline still applies.")
    await expect(subject.get_by_role("link", name="Enter the code from our e-mail")).to_have_count(0)
