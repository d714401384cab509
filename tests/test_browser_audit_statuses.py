"""The console's request page for a request in each status (awaiting verification, awaiting
approval, in progress with a failed step, extended, denied, completed, cancelled, closed
unverified, stopped), opened in a real browser (Debian's Chromium) by each role: every control it
shows leads somewhere. Each link and framed letter is fetched with the page's own session and must
answer 200 (no 404, no refusal, no error page); each in-page anchor names an element of the page;
each form's address must take its method (a post without the form's CSRF token is refused by the
CSRF check, not answered 404 or 405, so nothing changes); the live region's poll answers. The
buttons themselves are pressed in the state each makes sense by the other browser tests
(tests/test_browser_actions.py, tests/test_browser_task_actions.py, ...). Same setup as
tests/test_browser.py; the Temporal UI link leads off the site and is followed by
tests/test_browser_audit_request.py."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.async_api import Page, expect
from temporalio import activity

from activities.letters import deliver_letter
from dsrflow.domain.request_resume import ended_trouble_key
from schemas.staff_tokens import ROLES
from schemas.workflow import LetterJob, LetterReceipt, workflow_id_for
from tests.support import live_client, staff_headers, stored_request, unique_email
from tests.test_approval import approval_settings  # noqa: F401 (fixture: access waits for approval)
from tests.test_browser import CHROMIUM, open_request, served_site, signed_in
from workers.dsr_worker import activity_context

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
SLOW = 30_000  # ms
# The queue's and the inbox's rows: every request and message the worker's database holds (other
# modules' too, whose workflows' workers are gone: a request page then waits on its workflow's
# query), each opened by the tests of the pages they lead to.
ROW = re.compile(r"^/console/(requests|inbox)/[0-9a-f-]{36}$")
STUCK = "stuck."  # a subject whose acknowledgement the relay refuses: its request waits on the failed step


@dataclass
class Statuses:
    url: str = ""
    requests: dict[str, str] = field(default_factory=dict)  # what it shows -> request id


@pytest.fixture
async def status_site(approval_settings, pool, dev_server, task_queue) -> AsyncIterator[str]:  # noqa: F811
    """The site (access waits for approval) behind a relay that refuses the acknowledgement of a
    subject whose address starts with `STUCK`, for good."""
    ctx = activity_context(approval_settings, pool)

    @activity.defn(name="send_letter")
    async def send_letter(job: LetterJob) -> LetterReceipt:
        email = await pool.fetchval("SELECT subject_email FROM dsr_requests WHERE id = $1::uuid", job.request_id)
        if job.purpose == "acknowledgement" and email.startswith(STUCK):
            raise ValueError("550 5.7.1 the relay refuses this sender")
        return await deliver_letter(ctx, job)

    async with served_site(approval_settings, pool, dev_server.client, task_queue,
                           activity_overrides=[send_letter]) as url:
        yield url


async def _post(site: str, pool, path: str, body: dict) -> None:
    async with live_client(base_url=site, timeout=30) as http:
        r = await http.post(path, headers=await staff_headers(pool, "compliance"), json=body)
    assert r.status_code == 200, r.text


async def _requests(site: str, pool, settings, dev_server) -> dict[str, str]:
    """One request in each status the console shows, keyed by the words its page shows."""
    made = {"awaiting verification": await open_request(site, pool),
            "awaiting approval": await open_request(site, pool, type="access", identity_attested=True),
            "in progress": await open_request(site, pool, identity_attested=True,
                                              subject={"email": unique_email(STUCK.rstrip("."))}),
            "completed": await open_request(site, pool, identity_attested=True)}
    made["extended"] = await open_request(site, pool, days_ago=2)
    await _post(site, pool, f"/v1/requests/{made['extended']}/extend",
                {"reason": "The request covers many systems and years"})
    made["denied"] = await open_request(site, pool)
    await _post(site, pool, f"/v1/requests/{made['denied']}/deny",
                {"reason_code": "manifestly_unfounded", "explanation": "The same request was answered last week"})
    made["cancelled"] = await open_request(site, pool)
    await _post(site, pool, f"/v1/requests/{made['cancelled']}/cancel",
                {"reason": "Withdrawn by phone", "withdrawn_by_subject": True})
    # Closed unanswered once the subject never confirmed: seven days on, so the stored row stands
    # for it (its workflow's end is not what the page reads).
    made["closed unverified"] = await stored_request(pool, settings, "audit.unverified", "erasure")
    await pool.execute("UPDATE dsr_requests SET status = 'closed_unverified', closed_at = now() WHERE id = $1::uuid",
                       made["closed unverified"])
    # Stopped: its workflow terminated while it was open, flagged as the start sweep flags it.
    made["stopped"] = await open_request(site, pool)
    handle = dev_server.client.get_workflow_handle(workflow_id_for(made["stopped"]))
    await handle.terminate("by mistake")
    await pool.execute(
        "INSERT INTO step_troubles (request_id, trouble_key, step, message, transient) "
        "VALUES ($1::uuid, $2, 'workflow', 'the request''s workflow terminated while the request was open', false)",
        made["stopped"], ended_trouble_key((await handle.describe()).run_id))
    return made


async def _settled(page: Page, status: str) -> None:
    """The page shows the request as it is now: its status (and what it shows beside it)."""
    if status == "stopped":
        await expect(page.locator("#workflow-ended h2")).to_have_text("This request has stopped")
        return
    if status == "extended":
        await expect(page.locator("#summary")).to_contain_text("Extended", timeout=SLOW)
        return
    await expect(page.locator("#status")).to_contain_text(status, timeout=SLOW)
    if status == "in progress":
        await expect(page.locator("#failed-step")).to_contain_text("the relay refuses this sender", timeout=SLOW)
    if status in ("denied", "cancelled", "completed", "awaiting verification"):
        await expect(page.locator("#letters-title")).not_to_have_text("Letters to the subject (0)", timeout=SLOW)


async def dead_ends(page: Page, site: str, skip: re.Pattern[str] | None = None) -> list[str]:
    """Every control of the page that leads nowhere, as `what: why`; links whose address `skip`
    matches are left alone."""
    found: list[str] = []
    here = page.url
    origin = urlsplit(site).netloc
    links = await page.locator("a[href]").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    frames = await page.locator("iframe[src]").evaluate_all("fs => fs.map(f => f.getAttribute('src'))")
    for href in sorted(set(links) | set(frames)):
        if skip is not None and skip.search(href):
            continue
        if href.startswith("#"):
            if await page.locator(f"[id='{href[1:]}']").count() != 1:
                found.append(f"{href}: no element of the page has this id")
            continue
        target = urljoin(here, href)
        if urlsplit(target).netloc != origin:
            continue  # off the site: the Temporal UI (tests/test_browser_audit_request.py)
        answer = await page.request.get(target, max_redirects=0)
        if answer.status != 200:
            found.append(f"{href}: {answer.status} {(await answer.text())[:200]}")
    forms = await page.locator("form").evaluate_all(
        "fs => fs.map(f => [(f.getAttribute('method') || 'get').toLowerCase(), f.getAttribute('action'),"
        " f.getAttribute('hx-post')])")
    for method, action, hx_post in forms:
        if hx_post is not None and hx_post != action:
            found.append(f"form {action}: htmx posts to {hx_post} instead")
        target = urljoin(here, action)
        if method == "get":
            answer = await page.request.get(target, max_redirects=0)
            if answer.status != 200:
                found.append(f"GET {action}: {answer.status}")
            continue
        # Without the form's CSRF token: refused by the check once the route and method are found.
        answer = await page.request.post(target, form={"nothing": ""}, max_redirects=0)
        body = await answer.text()
        if answer.status != 403 or "CSRF check failed" not in body:
            found.append(f"POST {action}: {answer.status} {body[:200]}")
    polls = await page.locator("[hx-get]").evaluate_all("es => es.map(e => e.getAttribute('hx-get'))")
    for poll in polls:
        answer = await page.request.get(urljoin(here, poll), headers={"HX-Request": "true"}, max_redirects=0)
        if answer.status not in (200, 204):
            found.append(f"poll {poll}: {answer.status}")
    return found


async def test_every_control_on_a_request_in_each_status_leads_somewhere_for_each_role(
        browser, status_site, pool, settings, dev_server):
    site = status_site
    made = await _requests(site, pool, settings, dev_server)
    for role in ROLES:
        page = await signed_in(browser, site, pool, role, "/console/")
        for status, rid in made.items():
            await page.goto(f"{site}/console/requests/{rid}")
            await _settled(page, status)
            assert await dead_ends(page, site) == [], f"{role}, {status} request {rid}"
        await page.context.close()


async def test_the_queue_and_the_new_request_page_lead_somewhere_for_each_role(browser, status_site, pool):
    """The same check over the pages around the request page: the queue (with a saved view), the
    new request form, the inbox and, for compliance, the dashboard."""
    site = status_site
    await open_request(site, pool)
    for role in ROLES:
        page = await signed_in(browser, site, pool, role, "/console/")
        await page.get_by_label("Save these filters as").fill(f"Everything {uuid.uuid4().hex[:6]}")
        await page.get_by_role("button", name="Save view").click()
        await expect(page.locator(".saved-view")).to_have_count(1)
        pages = ["/console/", "/console/requests/new", "/console/inbox"]
        if role != "agent":
            pages.append("/console/dashboard")
        for path in pages:
            await page.goto(f"{site}{path}")
            assert await dead_ends(page, site, skip=ROW) == [], f"{role} on {path}"
        await page.context.close()
