"""The request page's "Erasures deferred by a hold" panel in a real browser: an agent is not shown
it (it names the holds); compliance presses "Ask … again" for a processor that did not carry out
an erasure asked once a hold ended, and an admin "Record as erased" with the note that says how.
The site runs the demo systems under the policy's labels, as staff see them (the lifecycle
policy has no systems, and the panel then named them by their ids: "Ask surveys again"); the
deferred rows are written as the sweep leaves a failed processor's (activities/deferred_processors.py),
under a hold that is still in force, so the sweep the retry starts keeps them rather than asking
the processor. tests/test_browser_deferred_retry.py presses "Ask … again" where the first press
never reached the processor. The header's "Legal holds" page: a hold placed (on a system and a
data category) and released by compliance and an admin, saying why it ends, then read among the
released holds, a page at a time, with why it ended and a link to the request whose erasure it had
deferred; not shown to an agent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from playwright.async_api import expect

from api.console.released_holds import PAGE_SIZE
from dsrflow.domain.references import short_reference
from tests.fanout_stack import fanout_stack
from tests.support import eventually, unique_email
from tests.test_browser import CHROMIUM, open_request, shots, signed_in  # noqa: F401 (fixtures)
from workers.dsr_worker import build_worker

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


MARKETING, SURVEYS = "E-mail marketing (newsletters)", "Survey service provider"  # the policy's labels
CRM = "CRM (contacts, support requests, live chat)"
PAYMENTS = "Payment confirmations, invoices and mandate information"


@pytest.fixture
async def labelled_site(postgres, settings, pool, dev_server, tmp_path) -> AsyncIterator[str]:
    """The demo systems behind the site, the survey provider (a processor reached by e-mail) among
    them: its requests here are never verified, so no task waits for its confirmation."""
    async with (fanout_stack(postgres, settings, dev_server.client, tmp_path, keep_manual=("surveys",)) as stack,
                build_worker(dev_server.client, stack.settings, pool)):
        yield stack.api_url


async def _failed_processor(pool, rid: str, system: str) -> None:
    await pool.execute(
        """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                          hold_ref, policy_version, external_id, submitted_at, failed_at, failure)
           SELECT id, $2, $3, 'all', 'all', 'legal_claims', $4, policy_version, $5, now(), now(),
                  'the processor cancelled the job'
             FROM dsr_requests WHERE id = $1""",
        rid, f"browser-{uuid.uuid4().hex}", system, str(uuid.uuid4()), str(uuid.uuid4()))


async def test_compliance_asks_a_processor_again_and_an_admin_records_it_erased(browser, labelled_site, pool,
                                                                                shots):  # noqa: F811
    site = labelled_site
    rid = await open_request(site, pool)
    await _failed_processor(pool, rid, "email_marketing")
    await _failed_processor(pool, rid, "surveys")

    agent = await signed_in(browser, site, pool, "agent", f"/console/requests/{rid}")
    await expect(agent.get_by_role("heading", level=1)).to_have_text("Erasure request")
    await expect(agent.get_by_role("heading", name="Erasures deferred by a hold")).to_have_count(0)

    officer = await signed_in(browser, site, pool, "compliance", f"/console/requests/{rid}")
    panel = officer.locator("#deferred")
    for system, label in (("email_marketing", MARKETING), ("surveys", SURVEYS)):
        await expect(panel.locator(f"tr[data-system={system}] td").first).to_have_text(label)
    await expect(panel.locator("tr[data-system=email_marketing]")).to_contain_text(
        "1 not erased by the processor: the processor cancelled the job")
    await officer.get_by_role("button", name=f"Ask {MARKETING} again").click()
    await expect(panel.locator(".flash")).to_contain_text("asked again")
    await expect(panel.locator("tr[data-system=email_marketing]")).to_contain_text("2 times")
    await expect(panel.locator("tr[data-system=email_marketing]")).to_contain_text("1 still held")  # its hold is on
    await expect(officer.get_by_role("button", name=f"Ask {MARKETING} again")).to_have_count(0)
    await expect(officer.get_by_role("button", name=f"Ask {SURVEYS} again")).to_have_count(1)
    await expect(officer.locator(".timeline")).to_contain_text(
        f"Processor asked again to carry out the deferred erasure ({MARKETING})")
    await shots(officer, "deferred")

    async def asked_again() -> bool:
        return await pool.fetchval("SELECT attempt = 2 AND failed_at IS NULL FROM deferred_erasures "
                                   "WHERE request_id = $1 AND system = 'email_marketing'", rid)

    await eventually(asked_again)

    await expect(officer.get_by_label(f"How {SURVEYS}'s erasure was carried out")).to_be_visible()  # goes stale
    admin = await signed_in(browser, site, pool, "admin", f"/console/requests/{rid}")
    await admin.get_by_label(f"How {SURVEYS}'s erasure was carried out").fill(
        "The panel provider deleted the respondent by hand; their e-mail of 4 December confirms it.")
    await admin.get_by_role("button", name="Record as erased").last.click()
    await expect(admin.locator("#deferred .flash")).to_contain_text("Recorded as erased by other means")
    await expect(admin.locator("#deferred tr[data-system=surveys]")).to_contain_text(
        "1 recorded by staff as erased by other means")
    await expect(admin.locator("#notes .note-body")).to_contain_text("The panel provider deleted the respondent")
    await expect(admin.locator(".timeline")).to_contain_text(f"Deferred erasure recorded as done by other means ({SURVEYS})")
    await expect(admin.get_by_label(f"How {SURVEYS}'s erasure was carried out")).to_have_count(0)
    assert await pool.fetchval("SELECT settled_by FROM deferred_erasures WHERE request_id = $1 AND system = 'surveys'",
                               rid) == (await pool.fetchval(
        "SELECT actor FROM audit_events WHERE request_id = $1 AND event_type = 'erasure.deferred_settled'", rid))

    # Compliance's page, open since before the admin's note, still offers asking the survey provider
    # again: pressed, it is refused in the panel, in the processor's name, which now reads as settled
    # (the form says what its page showed: attempt 1, failed).
    await officer.get_by_role("button", name=f"Ask {SURVEYS} again").click()
    await expect(officer.locator("#deferred [role=alert]")).to_have_text(
        f"{SURVEYS}'s deferred erasure this was sent for (attempt 1, failed) has been answered or has changed "
        "since, and stands now at attempt 1, settled: nothing was done; read the request again before answering "
        "it (the panel shows it now).")
    await expect(officer.locator("#deferred tr[data-system=surveys]")).to_contain_text(
        "1 recorded by staff as erased by other means")
    await expect(officer.get_by_role("button", name=f"Ask {SURVEYS} again")).to_have_count(0)
    assert await pool.fetchval("SELECT attempt FROM deferred_erasures WHERE request_id = $1 AND system = 'surveys'",
                               rid) == 1


async def test_compliance_and_an_admin_place_and_release_a_legal_hold_and_an_agent_is_not_shown_it(
        browser, labelled_site, pool):
    """The header's "Legal holds": compliance and an admin place a hold on one system and one data
    category, first with a reason too short and a review date gone (each refused beside its field,
    what was typed and ticked kept), then as it should be, see it in force and release it, first
    without saying why (refused beside the field), then saying why; it is then among the released
    holds, saying who placed and released it and why, and links the request whose erasure it had
    deferred; older released holds are a page away, released before a release said why ("not
    recorded"). An agent is shown no link, and
    the page refuses it. Before the page, a hold was placed and released with curl alone; before
    the released list, a released hold was gone from the page."""
    site = labelled_site
    past = (date.today() - timedelta(days=1)).isoformat()
    review = date.today() + timedelta(days=200)
    # More than a page of released holds: the ones released now come first, these a page later.
    for n in range(PAGE_SIZE):
        await pool.execute(
            """INSERT INTO legal_holds (id, subject_hash, subject_email, systems, basis, reason, review_date,
                                        placed_by, placed_at, released_by, released_at)
               VALUES ($1, $2, $3, NULL, 'Art. 17(3)(e) GDPR', 'An old dispute, settled', '2001-06-30',
                       'compliance:test', $4, 'admin:test', $4)""",
            uuid.uuid4(), f"browser-{uuid.uuid4().hex}", unique_email("held.old"),
            datetime(2000, 1, 1, tzinfo=UTC) + timedelta(days=n))
    for role in ("compliance", "admin"):
        email = unique_email(f"held.{role}")
        page = await signed_in(browser, site, pool, role, "/console/")
        await page.get_by_role("navigation", name="Console").get_by_role("link", name="Legal holds").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Legal holds")
        await page.get_by_label("Subject's e-mail address").fill(email)
        await page.get_by_label(CRM).check()
        await page.get_by_label(PAYMENTS).check()
        await page.get_by_label("Reason (the claim it is kept for; kept in the audit trail)").fill("Dispute")
        await page.get_by_label("Review by").fill(past)
        await page.get_by_role("button", name="Place the hold").click()
        await expect(page.locator("#reason-error")).to_contain_text("Too short: say which claim the records are kept for")
        await expect(page.locator("#review_date-error")).to_contain_text("must be after today")
        await expect(page.get_by_label("Subject's e-mail address")).to_have_value(email)
        await expect(page.get_by_label(CRM)).to_be_checked()
        await expect(page.get_by_label(PAYMENTS)).to_be_checked()
        assert await pool.fetchval("SELECT count(*) FROM legal_holds WHERE subject_email = $1", email) == 0

        await page.get_by_label("Reason (the claim it is kept for; kept in the audit trail)").fill(
            f"Dispute over contract 2026/17 ({role})")
        await page.get_by_label("Review by").fill(review.isoformat())
        await page.get_by_role("button", name="Place the hold").click()
        await expect(page.locator("#hold-placed")).to_contain_text(f"Hold placed on {email}")
        row = page.locator("#holds tbody tr").filter(has_text=email)
        await expect(row).to_contain_text(CRM)
        await expect(row).to_contain_text(PAYMENTS)
        await expect(row).to_contain_text(f"Dispute over contract 2026/17 ({role})")
        hold = await pool.fetchrow("SELECT id, systems, categories, review_date FROM legal_holds WHERE subject_email = $1",
                                   email)
        assert (list(hold["systems"]), list(hold["categories"]), hold["review_date"]) == (["crm"], ["payments"], review)

        # A request of the held subject names the hold, and leads to the page that releases it.
        rid = await open_request(site, pool, subject={"email": email})
        # What an erasure of it left under the hold, as erased since (the release's sweep has nothing to do).
        await pool.execute(
            """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                              hold_ref, policy_version, done_at)
               SELECT r.id, h.subject_hash, 'crm', 'contacts', 'c-1', 'legal_claims', $2, r.policy_version, now()
                 FROM legal_holds h, dsr_requests r WHERE r.id = $1 AND h.id = $3""",
            uuid.UUID(rid), str(hold["id"]), hold["id"])
        await page.goto(f"{site}/console/requests/{rid}")
        await expect(page.locator("#live")).to_contain_text(f"Legal-claims hold (active): Dispute over contract 2026/17 ({role})")
        await page.locator("#live").get_by_role("link", name="Legal holds").click()
        await expect(page).to_have_url(f"{site}/console/holds")
        row = page.locator("#holds tbody tr").filter(has_text=email)
        await row.get_by_label("Why it ends").fill("Settled")
        await row.get_by_role("button", name="Release").click()
        await expect(page.locator("#release-error")).to_have_text("Nothing was released: say why the hold ends.")
        row = page.locator("#holds tbody tr").filter(has_text=email)
        await expect(row.locator("#reason-error")).to_have_text("Too short: say why the hold ends, in at least 10 characters.")
        await expect(row.get_by_label("Why it ends")).to_have_value("Settled")
        assert await pool.fetchval("SELECT released_at IS NULL FROM legal_holds WHERE id = $1", hold["id"])
        await row.get_by_label("Why it ends").fill(f"Settled out of court ({role})")
        await row.get_by_role("button", name="Release").click()
        await expect(page.locator("#hold-released")).to_contain_text(f"Hold on {email} released.")
        await expect(page.locator("#holds tbody tr").filter(has_text=email)).to_have_count(0)
        assert await pool.fetchval("SELECT released_at IS NOT NULL FROM legal_holds WHERE id = $1", hold["id"])

        released = page.locator("#released-holds tbody tr")
        await expect(released.first).to_contain_text(email)  # the last released first
        await expect(released.first).to_contain_text(f"by browser {role} ({role})")
        await expect(released.first).to_contain_text(f"{CRM}; {PAYMENTS}")
        await expect(released.first).to_contain_text(f"Settled out of court ({role})")
        await page.get_by_role("link", name="Older released holds").click()
        await expect(released.filter(has_text=email)).to_have_count(0)
        await expect(released.first).to_be_visible()
        # Those released before a release said why (other tests' holds released now may push them
        # a page further: tests/test_console_holds.py reads one for certain).
        await expect(released.filter(has_text="An old dispute, settled").filter(
            has_not_text="not recorded")).to_have_count(0)
        await page.get_by_role("link", name="back to the last released").click()
        await released.first.get_by_role("link", name=short_reference(rid)).click()
        await expect(page).to_have_url(f"{site}/console/requests/{rid}")
        await page.context.close()

    page = await signed_in(browser, site, pool, "agent", "/console/")
    await expect(page.get_by_role("navigation", name="Console").get_by_role("link", name="Legal holds")).to_have_count(0)
    await page.goto(f"{site}/console/holds")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Forbidden")
