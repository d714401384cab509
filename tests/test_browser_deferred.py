"""The request page's "Erasures deferred by a hold" panel in a real browser: an agent is not shown
it (it names the holds); compliance presses "Ask … again" for a processor that did not carry out
an erasure asked once a hold ended, and an admin "Record as erased" with the note that says how.
Same setup as tests/test_browser.py; the deferred rows are written as the sweep leaves a failed
processor's (activities/deferred_processors.py), under a hold that is still in force, so the sweep
the retry starts keeps them rather than asking a processor this site does not have."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import expect

from tests.support import eventually
from tests.test_browser import CHROMIUM, open_request, shots, signed_in, site  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


async def _failed_processor(pool, rid: str, system: str) -> None:
    await pool.execute(
        """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                          hold_ref, policy_version, external_id, submitted_at, failed_at, failure)
           SELECT id, $2, $3, 'all', 'all', 'legal_claims', $4, policy_version, $5, now(), now(),
                  'the processor cancelled the job'
             FROM dsr_requests WHERE id = $1""",
        rid, f"browser-{uuid.uuid4().hex}", system, str(uuid.uuid4()), str(uuid.uuid4()))


async def test_compliance_asks_a_processor_again_and_an_admin_records_it_erased(browser, site, pool, shots):  # noqa: F811
    rid = await open_request(site, pool)
    await _failed_processor(pool, rid, "email_marketing")
    await _failed_processor(pool, rid, "surveys")

    agent = await signed_in(browser, site, pool, "agent", f"/console/requests/{rid}")
    await expect(agent.get_by_role("heading", level=1)).to_have_text("Erasure request")
    await expect(agent.get_by_role("heading", name="Erasures deferred by a hold")).to_have_count(0)

    officer = await signed_in(browser, site, pool, "compliance", f"/console/requests/{rid}")
    panel = officer.locator("#deferred")
    await expect(panel.locator("tr[data-system=email_marketing]")).to_contain_text(
        "1 not erased by the processor: the processor cancelled the job")
    await officer.get_by_role("button", name="Ask email_marketing again").click()
    await expect(panel.locator(".flash")).to_contain_text("asked again")
    await expect(panel.locator("tr[data-system=email_marketing]")).to_contain_text("2 times")
    await expect(officer.get_by_role("button", name="Ask email_marketing again")).to_have_count(0)
    await expect(officer.get_by_role("button", name="Ask surveys again")).to_have_count(1)
    await shots(officer, "deferred")

    async def asked_again() -> bool:
        return await pool.fetchval("SELECT attempt = 2 AND failed_at IS NULL FROM deferred_erasures "
                                   "WHERE request_id = $1 AND system = 'email_marketing'", rid)

    await eventually(asked_again)

    admin = await signed_in(browser, site, pool, "admin", f"/console/requests/{rid}")
    await admin.get_by_label("How surveys's erasure was carried out").fill(
        "The panel provider deleted the respondent by hand; their e-mail of 4 December confirms it.")
    await admin.get_by_role("button", name="Record as erased").last.click()
    await expect(admin.locator("#deferred .flash")).to_contain_text("Recorded as erased by other means")
    await expect(admin.locator("#deferred tr[data-system=surveys]")).to_contain_text(
        "1 recorded by staff as erased by other means")
    await expect(admin.locator("#notes .note-body")).to_contain_text("The panel provider deleted the respondent")
    await expect(admin.locator(".timeline")).to_contain_text("Deferred erasure recorded as done by other means (surveys)")
    assert await pool.fetchval("SELECT settled_by FROM deferred_erasures WHERE request_id = $1 AND system = 'surveys'",
                               rid) == (await pool.fetchval(
        "SELECT actor FROM audit_events WHERE request_id = $1 AND event_type = 'erasure.deferred_settled'", rid))
