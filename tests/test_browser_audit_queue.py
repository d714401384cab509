"""The queue's filter controls no other browser test presses, pressed in a real browser (Debian's
Chromium) by each role (every role sees the same queue): the Status boxes, Regime, Overdue (either
way), Due before, Needs attention, Stopped for compliance and admins, Type for them too, the search
box with a reference (it opens the request) and with one nobody has, "Open requests" (the filters
dropped), and "Save view" on a filter of stopped requests, whose link must show those again.

One site for the module, without a worker: the requests are stored by the intake store with the
columns each filter reads set directly (status, regime, due date, the start sweep's stopped flag),
as tests/test_browser_navigation.py does. Each search also names the subject, whose address is
this module's alone, so the rows are this test's whatever other modules stored."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from playwright.async_api import Locator, Page, expect

from dsrflow.domain.references import short_reference
from dsrflow.domain.request_resume import ended_trouble_key
from schemas.staff_tokens import ROLES
from tests.support import controller_today, unique_email
from tests.test_browser import CHROMIUM, served_site, signed_in
from tests.test_subject_search import intake

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
ROWS = "#queue tr[data-request-id]"


@pytest.fixture(scope="module")
async def queue_site(settings, pool, dev_server) -> AsyncIterator[str]:
    async with served_site(settings, pool, dev_server.client, f"queue-{uuid.uuid4().hex[:8]}", worker=False) as url:
        yield url


async def stored(pool, settings, email: str, kind: str, *, due_in: int, status: str = "awaiting_verification",
                 regime: str = "gdpr") -> str:
    """Due `due_in` days from the controller's today, which the badges count from (not the
    database's UTC date: late in the UTC evening it is tomorrow in Brussels)."""
    rid = await intake(pool, settings, email, type=kind)
    await pool.execute(
        "UPDATE dsr_requests SET due_date = $2, current_due_date = $2, status = $3, regime = $4, "
        "closed_at = CASE WHEN $3 IN ('completed', 'denied', 'cancelled') THEN now() END "
        "WHERE id = $1", uuid.UUID(rid), controller_today(settings) + timedelta(days=due_in), status, regime)
    return rid


async def stopped(pool, settings, email: str, *, due_in: int) -> str:
    """Open, its workflow ended: flagged as the start sweep flags it."""
    rid = await stored(pool, settings, email, "erasure", due_in=due_in, status="in_progress")
    await pool.execute("INSERT INTO step_troubles (request_id, trouble_key, step, message, transient) "
                       "VALUES ($1::uuid, $2, 'workflow', 'the workflow terminated', false)",
                       rid, ended_trouble_key(str(uuid.uuid4())))
    return rid


async def shows(rows: Locator, ids: list[str]) -> None:
    await expect(rows).to_have_count(len(ids))
    assert [await row.get_attribute("data-request-id") for row in await rows.all()] == ids


async def search(page: Page, site: str, email: str) -> None:
    """The queue afresh (its open statuses ticked), narrowed to the subject; the caller sets one
    more filter and presses Show."""
    await page.goto(f"{site}/console/")
    await page.get_by_label("Subject's e-mail or customer number").fill(email)


async def test_each_role_presses_each_queue_filter(browser, queue_site, pool, settings):
    site, email = queue_site, unique_email("queue.filters")
    soon = await stored(pool, settings, email, "erasure", due_in=3)
    approval = await stored(pool, settings, email, "access", due_in=20, status="awaiting_approval", regime="ccpa")
    late = await stored(pool, settings, email, "portability", due_in=-2)
    done = await stored(pool, settings, email, "erasure", due_in=10, status="completed")
    halted = await stopped(pool, settings, email, due_in=30)
    cutoff = (controller_today(settings) + timedelta(days=15)).isoformat()

    for role in ROLES:
        page = await signed_in(browser, site, pool, role, "/console/")
        rows = page.locator(ROWS)
        status_box = page.get_by_role("group", name="Status")

        # The fresh queue's boxes are the open statuses: ticked, each one taken off or added counts.
        await search(page, site, email)
        for open_status in ("awaiting verification", "in progress", "awaiting approval"):
            await expect(status_box.get_by_label(open_status)).to_be_checked()
            await status_box.get_by_label(open_status).uncheck()
        await status_box.get_by_label("completed").check()
        await page.get_by_role("button", name="Show").click()
        await shows(rows, [done])
        await expect(status_box.get_by_label("completed")).to_be_checked()
        await expect(status_box.get_by_label("in progress")).not_to_be_checked()
        await expect(rows).to_contain_text("completed")

        await search(page, site, email)
        await status_box.get_by_label("awaiting approval").uncheck()
        await page.get_by_role("button", name="Show").click()
        await shows(rows, [late, soon, halted])

        await search(page, site, email)
        await page.get_by_label("Type").select_option("access")
        await page.get_by_role("button", name="Show").click()
        await shows(rows, [approval])
        await expect(page.get_by_label("Type")).to_have_value("access")

        await search(page, site, email)
        await page.get_by_label("Regime").select_option(label="CCPA (California)")
        await page.get_by_role("button", name="Show").click()
        await shows(rows, [approval])
        await expect(page.get_by_label("Regime")).to_have_value("ccpa")
        await expect(rows).to_contain_text("CCPA (California)")

        await search(page, site, email)
        await page.get_by_label("Overdue").select_option(label="overdue")
        await page.get_by_role("button", name="Show").click()
        await shows(rows, [late])
        await expect(rows.locator(".badge.overdue")).to_contain_text("overdue by 2 days")

        await search(page, site, email)
        await page.get_by_label("Overdue").select_option(label="not overdue")
        await page.get_by_role("button", name="Show").click()
        await shows(rows, [soon, approval, halted])  # open ones: the boxes ticked

        await search(page, site, email)
        await page.get_by_label("Due before").fill(cutoff)
        await page.get_by_role("button", name="Show").click()
        await shows(rows, [late, soon])
        await expect(page.get_by_label("Due before")).to_have_value(cutoff)

        await search(page, site, email)
        await page.get_by_label("Needs attention").check()
        await page.get_by_role("button", name="Show").click()
        await shows(rows, [approval, halted])  # awaiting approval, and stopped (it needs attention too)

        await search(page, site, email)
        await page.get_by_label("Stopped (its workflow ended").check()
        await page.get_by_role("button", name="Show").click()
        await shows(rows, [halted])
        await expect(rows.locator(".badge")).to_contain_text(["stopped"])

        # "Open requests": every filter dropped, the open requests (the subject's and everyone's).
        await page.get_by_role("link", name="Open requests").click()
        await expect(page).to_have_url(f"{site}/console/")
        await expect(page.get_by_label("Subject's e-mail or customer number")).to_have_value("")
        await expect(page.get_by_label("Stopped (its workflow ended")).not_to_be_checked()
        await expect(page.locator(f'{ROWS}[data-request-id="{done}"]')).to_have_count(0)  # closed

        # The search box: a reference opens its request; one nobody has is said so, beside the box.
        await page.get_by_label("Reference or request id").fill(short_reference(soon).lower())
        await page.get_by_role("button", name="Show").click()
        await expect(page).to_have_url(f"{site}/console/requests/{soon}")
        await expect(page.locator("#reference")).to_have_text(short_reference(soon))
        await page.goto(f"{site}/console/")
        nobody = short_reference(str(uuid.uuid4()))
        await page.get_by_label("Reference or request id").fill(nobody)
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("#q-error")).to_have_text(f"No request has the reference {nobody}.")
        await expect(page.get_by_label("Reference or request id")).to_have_attribute("aria-invalid", "true")
        await page.context.close()


async def test_each_role_saves_a_view_of_stopped_requests_and_its_link_shows_them(browser, queue_site, pool, settings):
    """The view keeps the Stopped filter: its link showed every open request instead (the filter
    was not among those a view keeps)."""
    site, email = queue_site, unique_email("queue.view")
    halted = await stopped(pool, settings, email, due_in=4)
    running = await stored(pool, settings, email, "erasure", due_in=2)
    for role in ROLES:
        page = await signed_in(browser, site, pool, role, "/console/")
        rows = page.locator(ROWS)
        await page.get_by_label("Stopped (its workflow ended").check()
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator(f'{ROWS}[data-request-id="{halted}"]')).to_have_count(1)
        name = f"Stopped {role} {uuid.uuid4().hex[:4]}"
        await page.get_by_label("Save these filters as").fill(name)
        await page.get_by_role("button", name="Save view").click()
        view = page.get_by_role("link", name=name, exact=True)
        await expect(view).to_have_count(1)

        await page.get_by_role("link", name="Open requests").click()
        await expect(page.locator(f'{ROWS}[data-request-id="{running}"]')).to_have_count(1)
        await view.click()
        await expect(page).to_have_url(re.compile(r"/console/\?.*stopped=true"))
        await expect(page.get_by_label("Stopped (its workflow ended")).to_be_checked()
        await expect(page.locator(f'{ROWS}[data-request-id="{halted}"]')).to_have_count(1)
        await expect(page.locator(f'{ROWS}[data-request-id="{running}"]')).to_have_count(0)
        await expect(rows.filter(has_not=page.locator(".badge", has_text="stopped"))).to_have_count(0)

        await page.get_by_role("button", name=f"Delete the view {name}").click()
        await expect(view).to_have_count(0)
        await page.context.close()


async def test_each_role_skips_to_the_content_and_compliance_opens_the_dashboards_tables(browser, queue_site, pool):
    """The header's "Skip to content" (the first thing a keyboard reaches) and the dashboard's two
    tables behind their summaries, "Per month" and "Open requests by due week"."""
    site = queue_site
    for role in ROLES:
        page = await signed_in(browser, site, pool, role, "/console/")
        await page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to content")
        await expect(skip).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{site}/console/#main")
        await expect(page.locator("main")).to_be_focused()
        if role == "agent":  # the dashboard is compliance's: tests/test_browser_navigation.py
            await page.context.close()
            continue
        await page.goto(f"{site}/console/dashboard")
        for summary, first_column in (("Per month", "Month"), ("Open requests by due week", "Due")):
            details = page.locator("details", has=page.locator("summary", has_text=summary))
            table = details.locator("table")
            await expect(table).to_be_hidden()
            await details.locator("summary").click()
            await expect(table).to_be_visible()
            await expect(table.locator("thead th").first).to_have_text(first_column)
            assert await table.locator("tbody tr").count() >= 1
        await expect(page.locator("details", has_text="Per month").locator("tbody tr")).to_have_count(12)  # MONTHS
        await page.context.close()
