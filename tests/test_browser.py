"""The console and the portal in a real browser: Debian's headless Chromium driven by Playwright,
against the API served by uvicorn on a loopback port, a real worker and the Temporal dev server.

With `--screenshots`, screenshots of each step are kept under tests/artifacts/ (not in git); each
test prints where.
`.ci/run` installs Chromium when it is missing; without it these tests are skipped, saying so.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from api.auth import create_token
from dsrflow.domain.references import short_reference
from dsrflow.i18n import long_date
from tests.apps import lent_app
from tests.conftest import CHROMIUM
from tests.fanout_stack import loopback_socket, serve
from tests.pools import session_pool_on
from tests.support import live_client, staff_headers, verification_code, wait_for_due_date, wait_for_letter
from workers.dsr_worker import build_worker

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


@contextlib.asynccontextmanager
async def served_site(settings, pool, client, task_queue: str, activity_overrides=(), *,
                      worker: bool = True) -> AsyncIterator[str]:
    """The whole app with these settings on a free loopback port, its links pointing there, with
    a worker (running the fakes of `activity_overrides` in place of the real activities) unless
    `worker` is False; yields its address."""
    sock, port = loopback_socket()
    url = f"http://127.0.0.1:{port}"
    site_settings = settings.model_copy(update={"public_url": url, "task_queue": task_queue})
    running = (build_worker(client, site_settings, pool, task_queue=task_queue, activity_overrides=activity_overrides)
               if worker else contextlib.nullcontext())
    async with running, lent_app(site_settings, temporal_client=client,
                                 pool=session_pool_on(site_settings.effective_database_url)) as app:
        server, task = await serve(app, sock)
        try:
            yield url
        finally:
            server.should_exit = True
            await task


@pytest.fixture
async def site(settings, pool, dev_server, task_queue) -> AsyncIterator[str]:
    async with served_site(settings, pool, dev_server.client, task_queue) as url:
        yield url


@pytest.fixture
def shots(request) -> AsyncIterator:
    """`await shot(page, "step")` saves tests/artifacts/<test>-<n>-<step>.png when pytest runs with
    `--screenshots` (tests/conftest.py), for a person to look at; nothing reads them. Taken in
    every run, the suite's 190 full-page shots cost 0.15-0.26 s of wall time and 0.08-0.16 s of
    CPU each (docs/testing.md#how-the-suite-is-kept-fast)."""
    taken: list[Path] = []

    async def shot(page: Page, step: str) -> None:
        if not request.config.getoption("screenshots"):
            return
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{request.node.name}-{len(taken) + 1}-{step}.png"
        await page.screenshot(path=str(path), full_page=True)
        taken.append(path)

    yield shot
    if taken:
        print(f"\nscreenshots: {', '.join(str(p) for p in taken)}")


async def open_request(site: str, pool, *, days_ago: int = 0, **fields) -> str:
    """A request (an unverified erasure, unless `fields` say otherwise) received `days_ago`, once
    its workflow has computed the due date."""
    received = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    async with live_client(base_url=site, timeout=30) as http:
        r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
            "type": "erasure", "subject": {"email": f"browser.{uuid.uuid4().hex[:8]}@example.com"},
            "received_at": received, **fields})
    assert r.status_code == 201, r.text
    await wait_for_due_date(pool, r.json()["id"])
    return r.json()["id"]


async def five_wrong_codes(page: Page, code: str, confirm: str, left: tuple[str, ...], says: str) -> None:
    """Type a wrong code (not `code`) five times on the verify page, pressing `confirm`; each
    answer's alert says `says % left[n]` (the attempts left) until the last."""
    wrong = "000000" if code != "000000" else "111111"
    for n in range(5):
        await page.locator("#code").fill(wrong)
        await page.get_by_role("button", name=confirm).click()
        if n < 4:  # each answer is a new page: wait for it before typing again
            await expect(page.get_by_role("alert")).to_contain_text(says % left[n])


async def signed_in(browser: Browser, site: str, pool, role: str, path: str) -> Page:
    """A new browser context whose member of staff signs in on the way to `path`."""
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{site}{path}")
    await expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
    await page.get_by_label("Staff token").fill(await create_token(pool, role, f"browser {role}"))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{site}{path}")
    return page


async def test_agent_signs_in_opens_a_request_and_finds_it_in_the_queue(browser, site, pool, shots):
    later, target, sooner = [await open_request(site, pool, days_ago=d) for d in (1, 12, 24)]
    page = await signed_in(browser, site, pool, "agent", f"/console/requests/{target}")
    await expect(page.locator("#status")).to_contain_text("awaiting verification")
    await expect(page.locator("#due-date")).to_contain_text("days left")
    await shots(page, "request")

    await page.get_by_role("link", name="Queue").click()
    await page.get_by_label("Type").select_option("erasure")
    await page.get_by_role("button", name="Show").click()
    rows = page.locator("tr[data-request-id]")
    await expect(rows.first).to_be_visible()
    order = [await row.get_attribute("data-request-id") for row in await rows.all()]
    mine = [rid for rid in order if rid in (later, target, sooner)]
    assert mine == [sooner, target, later]  # by due date: received 24, 12 and 1 day(s) ago
    badge = page.locator(f'tr[data-request-id="{target}"] .badge').first
    await expect(badge).to_have_text(re.compile(r"\d+ days left"))
    await shots(page, "queue")

    await page.get_by_label("Request id").fill(target)
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url(f"{site}/console/requests/{target}")


async def test_subject_verifies_in_the_portal_while_the_agent_watches(browser, site, pool, mail_sink, shots):
    subject = await (await browser.new_context()).new_page()
    await subject.goto(f"{site}/portal")
    await shots(subject, "portal-form")
    await subject.get_by_label("Access to your personal data").check()
    await subject.get_by_label("Your e-mail address").fill(f"portal.{uuid.uuid4().hex[:8]}@example.com")
    await subject.get_by_label("Your country (optional)").select_option("BE")
    await subject.get_by_role("button", name="Send my request").click()
    await expect(subject.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    rid = re.search(r"/portal/requests/([0-9a-f-]{36})/verify", subject.url).group(1)

    agent = await signed_in(browser, site, pool, "agent", f"/console/requests/{rid}")
    await expect(agent.locator("#status")).to_contain_text("awaiting verification")
    await agent.evaluate("window.notReloaded = true")
    await shots(agent, "agent-before")

    code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
    await subject.get_by_label("Code from the e-mail").fill(code)
    await shots(subject, "portal-code")
    await subject.get_by_role("button", name="Confirm").click()
    await expect(subject.get_by_role("status")).to_contain_text("you have confirmed")
    await shots(subject, "portal-status")

    # The agent's page follows the workflow without being reloaded.
    await expect(agent.locator("#status")).to_contain_text("completed", timeout=30_000)
    await expect(agent.locator("#live")).to_contain_text("The audit timeline is for compliance.")
    assert await agent.evaluate("window.notReloaded") is True
    await shots(agent, "agent-after")


async def test_compliance_extends_and_the_due_date_changes_in_place(browser, site, pool, shots):
    rid = await open_request(site, pool, days_ago=3)
    extended_due = await pool.fetchval("SELECT extended_due_date FROM dsr_requests WHERE id = $1", rid)
    page = await signed_in(browser, site, pool, "compliance", f"/console/requests/{rid}")
    due = page.locator("#due-date")
    await expect(due).not_to_contain_text(long_date(extended_due))
    await page.evaluate("window.notReloaded = true")
    await shots(page, "before")

    await page.get_by_label("Reason (sent to the subject)").first.fill("The request covers nine systems and many years")
    await page.get_by_role("button", name="Extend").click()

    await expect(due).to_contain_text(long_date(extended_due))
    await expect(page.get_by_role("status")).to_contain_text("Deadline extended")
    assert await page.evaluate("window.notReloaded") is True
    assert page.url == f"{site}/console/requests/{rid}"
    await expect(page.get_by_role("heading", name="Extend the deadline")).to_have_count(0)
    await shots(page, "after")


async def test_compliance_reads_the_evidence_pack_and_the_dashboard(browser, site, pool, dev_server, shots):
    async with live_client(base_url=site, timeout=30) as http:
        r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
            "type": "erasure", "subject": {"email": f"evidence.{uuid.uuid4().hex[:8]}@example.com"},
            "identity_attested": True})
    rid = r.json()["id"]
    await dev_server.client.get_workflow_handle(f"dsr-{rid}").result()
    page = await signed_in(browser, site, pool, "compliance", f"/console/requests/{rid}")
    await expect(page.locator("#status")).to_contain_text("completed")

    await page.get_by_role("link", name="Evidence pack").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(short_reference(rid))
    await expect(page.locator("#chain-result")).to_contain_text("linked into the hash chain")
    await shots(page, "evidence")
    pdf = ARTIFACTS / f"evidence-{rid[:8]}.pdf"
    await page.pdf(path=str(pdf))  # what "save as PDF" gives
    assert pdf.read_bytes().startswith(b"%PDF")

    await page.goto(f"{site}/console/dashboard")
    charts = page.locator("figure.chart svg")
    await expect(charts).to_have_count(4)
    await expect(charts.first.locator("rect >> nth=0")).to_be_attached()
    await shots(page, "dashboard")
