"""The request page's "Lifts to carry out by hand" panel in a real browser (hEH): compliance reads
the held lift the sweep handed to staff, writes how it was lifted and presses "Record that it was
lifted"; the page confirms it, the item is gone and the timeline says it with the note as written.
An agent reads the item and gets no button. The lift's request is stored and closed with the
sweep's trail (tests/test_lift_by_hand.py `handed_to_staff`); the site runs without a worker: a
closed request has no workflow to ask."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect

from tests.support import unique_email
from tests.test_browser import CHROMIUM, served_site, shots, signed_in  # noqa: F401 (fixtures)
from tests.test_lift_by_hand import LABEL, SYSTEM, handed_to_staff

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


@pytest.fixture
async def quiet_site(settings, pool, dev_server, task_queue) -> AsyncIterator[str]:
    async with served_site(settings, pool, dev_server.client, task_queue, worker=False) as url:
        yield url


async def test_compliance_records_that_a_held_lift_was_lifted_by_hand(browser, quiet_site, pool, settings,
                                                                      shots):  # noqa: F811
    lift = await handed_to_staff(pool, settings, unique_email("browser-byhand"))
    page = await signed_in(browser, quiet_site, pool, "compliance", f"/console/requests/{lift}")
    panel = page.locator("#lifts-by-hand")
    await expect(panel.locator(f"li[data-system={SYSTEM}]")).to_contain_text(f"{LABEL}: still restricted, handed to staff")
    await shots(page, "lift-by-hand-outstanding")
    note = "Their DPO confirmed by phone on 7 December that the flag is off <ticket 77>."
    await page.get_by_label(f"How and when “{LABEL}” was lifted").fill(note)
    await page.get_by_role("button", name="Record that it was lifted").click()
    await expect(panel.locator(".flash")).to_have_text(
        "Recorded: the lift by hand is in the request's timeline and evidence pack.")
    await expect(panel.locator("li")).to_have_count(0)
    await expect(page.get_by_role("button", name="Record that it was lifted")).to_have_count(0)
    await expect(page.locator(".timeline")).to_contain_text(
        f"Lift carried out by hand by staff at a system the sweep could not lift ({LABEL}: {note})")
    await shots(page, "lift-by-hand-recorded")


async def test_an_agent_sees_the_lift_by_hand_outstanding_and_no_button(browser, quiet_site, pool, settings):  # noqa: F811
    lift = await handed_to_staff(pool, settings, unique_email("browser-byhand-agent"))
    page = await signed_in(browser, quiet_site, pool, "agent", f"/console/requests/{lift}")
    await expect(page.locator(f"#lifts-by-hand li[data-system={SYSTEM}]")).to_contain_text(
        "compliance records it once it is lifted")
    await expect(page.get_by_role("button", name="Record that it was lifted")).to_have_count(0)
    await expect(page.locator("#lifts-by-hand textarea")).to_have_count(0)
