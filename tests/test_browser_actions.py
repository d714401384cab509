"""Every action button the console's request page offers on a request not yet answered (waiting
for the subject's code, or for approval), pressed in a real browser by each role that sees it
(agent, compliance, admin), with its visible outcome: the confirmation, the status, the letter
sent, the timeline. And a refused action shows its refusal inside the page, never a second page
nested in it. Same setup as tests/test_browser.py (Debian's Chromium, uvicorn, a worker). The
fixtures and helpers here serve the other console browser tests too, among them
tests/test_browser_task_actions.py (the buttons of tasks, objections, restrictions and failed
steps).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from playwright.async_api import Page, expect
from temporalio import activity

from activities.letters import deliver_letter
from dsrflow.i18n import long_date
from dsrflow.stores.accuracy_disputes import record_dispute
from schemas.workflow import LetterJob, LetterReceipt
from tests.fanout_stack import fanout_stack
from tests.refused_requests import appeals_held, stored_refusal
from tests.support import (
    eventually,
    live_client,
    staff_headers,
    text_of,
    unique_email,
    wait_for_letter,
)
from tests.test_accuracy_dispute_told import refused_correction
from tests.test_approval import approval_settings  # noqa: F401 (fixture: access needs approval)
from tests.test_browser import (  # noqa: F401
    CHROMIUM,
    open_request,
    served_site,
    shots,
    signed_in,
    site,
)
from workers.dsr_worker import activity_context, build_worker

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
POLLS = re.compile(r"/live\?v=")
SLOW = 30_000  # ms: what a worker does after an action (letters, the next steps)
OPEN_UNVERIFIED = {"agent": {"cancel", "resend-verification"},
                   "compliance": {"cancel", "resend-verification", "extend", "deny"}}
OPEN_UNVERIFIED["admin"] = OPEN_UNVERIFIED["compliance"]


@pytest.fixture
async def approval_site(approval_settings, pool, dev_server, task_queue) -> AsyncIterator[str]:  # noqa: F811
    async with served_site(approval_settings, pool, dev_server.client, task_queue) as url:
        yield url


@pytest.fixture
async def appeal_approval_site(settings, lifecycle_policy, tmp_path, pool, dev_server, task_queue) -> AsyncIterator[str]:
    """The site under a policy whose appeals wait for compliance's approval, as the shipped one's do
    (the tests' policy approves nothing: tests/conftest.py)."""
    async with served_site(appeals_held(settings, lifecycle_policy, tmp_path), pool, dev_server.client,
                           task_queue) as url:
        yield url


@pytest.fixture
async def systems_site(postgres, settings, pool, dev_server, tmp_path) -> AsyncIterator[str]:
    """The demo systems behind the site: an OpenDSR processor that cannot rectify (its task needs
    attention) and analytics under legitimate interest (an objection waits for a decision)."""
    async with (fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack,
                build_worker(dev_server.client, stack.settings, pool)):
        yield stack.api_url


@dataclass
class RefusingRelay:
    url: str  # the site's
    fixed: set[str]  # requests whose acknowledgement the relay takes
    closing: set[str]  # requests whose denial or cancellation letter it refuses
    acknowledgements: bool = False  # it takes every acknowledgement
    slow: set[str] = field(default_factory=set)  # requests whose denial it does not answer yet (transient)


@pytest.fixture
async def refusing_relay(settings, pool, dev_server, task_queue) -> AsyncIterator[RefusingRelay]:
    """The site behind a mail relay that refuses every acknowledgement (a fake `send_letter`: a
    deterministic error, so the step fails at once and waits for staff) except those of the
    requests in `fixed` (or all, once `acknowledgements`), and the denial or cancellation of
    those in `closing`."""
    ctx = activity_context(settings, pool)
    relay = RefusingRelay(url="", fixed=set(), closing=set())

    @activity.defn(name="send_letter")
    async def send_letter(job: LetterJob) -> LetterReceipt:
        if job.purpose == "acknowledgement" and not relay.acknowledgements and job.request_id not in relay.fixed:
            raise ValueError("550 5.7.1 the relay refuses this sender")
        if job.purpose in ("denial", "cancellation") and job.request_id in relay.closing:
            raise ValueError("550 5.1.1 the relay refuses this recipient")
        if job.purpose == "denial" and job.request_id in relay.slow:
            raise ConnectionRefusedError("the relay does not answer")
        return await deliver_letter(ctx, job)

    async with served_site(settings, pool, dev_server.client, task_queue, activity_overrides=[send_letter]) as url:
        relay.url = url
        yield relay


async def offered(page: Page) -> set[str]:
    """The actions whose forms the page shows."""
    return set(await page.locator("#live form[hx-post]").evaluate_all(
        "forms => forms.map(f => f.getAttribute('hx-post').split('/').pop())"))


async def press(page: Page, action: str, fields: dict[str, str] | None = None, *, flash: str,
                timeout: float | None = None) -> None:
    """Fill in one action's form and send it, as a person does, and see its confirmation. The
    page's polls are held meanwhile, so that no poll swaps the form away under the typing hand."""
    await page.route(POLLS, lambda route: route.abort())
    form = page.locator(f'#live form[hx-post$="/{action}"]')
    for label, value in (fields or {}).items():
        field = form.get_by_label(label)
        kind = await field.evaluate("e => e.type")
        if kind == "select-one":
            await field.select_option(value)
        elif kind in ("radio", "checkbox"):
            await field.check()
        else:
            await field.fill(value)
    await form.get_by_role("button").click()
    await expect(page.locator("#live .flash")).to_contain_text(flash, timeout=timeout)
    await page.unroute(POLLS)


async def assert_one_page(page: Page) -> None:
    await expect(page.locator("header")).to_have_count(1)
    await expect(page.locator("main")).to_have_count(1)


def letters(page: Page):
    return page.locator("section[aria-labelledby=letters-title]")


@pytest.mark.parametrize("role", ["agent", "compliance", "admin"])
async def test_each_button_on_an_open_request_works_for_each_role_that_sees_it(
        role, browser, approval_site, pool, mail_sink, shots):  # noqa: F811
    url = approval_site
    rid = await open_request(url, pool, days_ago=3)
    page = await signed_in(browser, url, pool, role, f"/console/requests/{rid}")
    await expect(page.locator("#letters-title")).to_have_text("Letters to the subject (2)", timeout=SLOW)  # receipt, code
    assert await offered(page) == OPEN_UNVERIFIED[role]
    await page.evaluate("window.notReloaded = true")

    await press(page, "resend-verification", flash="A new code and link are sent")
    if role == "agent":  # the audit timeline is compliance's (api/read_models/staff_reach.py READABLE_BY)
        await expect(page.locator("#live")).to_contain_text("The audit timeline is for compliance.")
        await expect(page.locator(".timeline")).to_have_count(0)
    else:
        await expect(page.locator(".timeline")).to_contain_text("New verification code sent")
    await expect(page.locator("#letters-title")).to_have_text("Letters to the subject (3)", timeout=SLOW)
    if role != "agent":
        extended = await pool.fetchval("SELECT extended_due_date FROM dsr_requests WHERE id = $1", rid)
        await press(page, "extend", {"Reason (sent to the subject)": "The request covers nine systems"},
                    flash="Deadline extended")
        await expect(page.locator("#due-date")).to_contain_text(long_date(extended))
    # An agent records the subject's own withdrawal; closing a request unanswered refuses it, which
    # is compliance's (the agent's form does not go without the box ticked).
    withdrawn = role == "agent"
    reason = "Withdrawn by phone" if withdrawn else "A duplicate of the subject's earlier request"
    await press(page, "cancel", {"Reason": reason, **({"The subject withdrew it themselves": "yes"} if withdrawn else {})},
                flash="Request cancelled.")
    await expect(page.locator("#status")).to_contain_text("cancelled")
    cancelled = await pool.fetchval(
        "SELECT data FROM audit_events WHERE request_id = $1 AND event_type = 'status.cancelled'", rid)
    assert cancelled == {"reason": reason, "withdrawn_by_subject": withdrawn}
    await expect(page.get_by_role("heading", name="Actions")).to_have_count(0)
    assert await page.evaluate("window.notReloaded") is True
    await shots(page, "cancelled")

    held = await open_request(url, pool, type="access", identity_attested=True)
    await page.goto(f"{url}/console/requests/{held}")
    await expect(page.locator("#status")).to_contain_text("awaiting approval", timeout=SLOW)
    if role == "agent":
        assert await offered(page) == {"cancel"}
        return
    assert await offered(page) == {"approve", "deny", "cancel", "extend"}
    await press(page, "approve", {"Note": "Package checked"}, flash="Release approved")
    await expect(page.locator("#status")).to_contain_text("completed", timeout=SLOW)
    await expect(letters(page)).to_contain_text("response", timeout=SLOW)
    await expect(page.locator(".timeline")).to_contain_text("Release approved")
    await shots(page, "approved")
    if role == "compliance":  # the subject's side of it, once: the letter's link, and its button
        link = re.search(r"http://\S+/portal/packages/[0-9a-f]{64}",
                         text_of(await wait_for_letter(mail_sink, held, "response"))).group(0)
        subject = await browser.new_page()
        await subject.goto(link)
        downloads = "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = 'package.downloaded'"
        assert await pool.fetchval(downloads, held) == 0  # opening the link downloads nothing
        async with subject.expect_download() as download:
            await subject.get_by_role("button", name="Download your data").click()
        got = await download.value
        assert got.suggested_filename.startswith("access-")
        await got.path()  # the whole file: a download is recorded once its last byte has gone

        async def recorded() -> bool:
            return await pool.fetchval(downloads, held) == 1

        await eventually(recorded)
        await subject.close()

    refused = await open_request(url, pool)
    await page.goto(f"{url}/console/requests/{refused}")
    # The officer reads the ground in words, with its article; the form still sends its code.
    await press(page, "deny", {"Ground": "manifestly unfounded (Art. 12(5) GDPR)",
                               "Explanation (sent to the subject)": "The same request was answered last week"},
                flash="Request denied")
    await expect(page.locator("#status")).to_contain_text("denied", timeout=SLOW)
    assert await pool.fetchval("SELECT data->>'reason_code' FROM audit_events WHERE request_id = $1 "
                               "AND event_type = 'status.denied'", refused) == "manifestly_unfounded"
    await expect(letters(page)).to_contain_text("denial", timeout=SLOW)
    await shots(page, "denied")


@pytest.mark.parametrize("role", ["agent", "compliance", "admin"])
async def test_the_progress_button_on_a_uk_complaint_works_for_each_role_that_sees_it(
        role, browser, site, pool, settings, shots):  # noqa: F811
    """A UK complaint awaiting its subject's code: compliance and an admin tell the complainant of
    progress (workflows/complaint_progress.py ProgressByHand), the letter listed and the timeline
    naming it with the note; an agent is not offered the button (a forged post: tests/test_authz_matrix.py)."""
    email = unique_email("browser-progress")
    refused = await stored_refusal(pool, settings, email, "uk_gdpr", type="erasure")
    rid = await open_request(site, pool, regime="uk_gdpr", appeal_of=refused, subject={"email": email})
    page = await signed_in(browser, site, pool, role, f"/console/requests/{rid}")
    await expect(page.locator("#letters-title")).to_have_text("Letters to the subject (2)", timeout=SLOW)
    if role == "agent":
        assert "tell-progress" not in await offered(page)
        return
    assert "tell-progress" in await offered(page)
    note = f"The billing team is checking the <records> again ({role})."
    await press(page, "tell-progress", {"Where the complaint stands": note}, flash="Progress letter sent")
    await expect(page.locator("#letters-title")).to_have_text("Letters to the subject (3)", timeout=SLOW)
    await expect(letters(page)).to_contain_text(re.compile("progress", re.IGNORECASE))
    await expect(page.locator(".timeline")).to_contain_text(f"Progress letter to the complainant, by staff ({note})")
    await shots(page, "progress-told")


@pytest.mark.parametrize("role", ["agent", "compliance", "admin"])
async def test_approving_an_appeal_asks_the_reasons_the_letter_quotes_for_each_role_that_sees_it(
        role, browser, appeal_approval_site, pool, settings, mail_sink, shots):  # noqa: F811
    """A VCDPA appeal of a refused erasure, its identity attested, awaits approval: compliance and
    an admin approve it with the reasons the Act has the controller give (Va. Code § 59.1-577(C)),
    which the response letter quotes under "Why we decided this"; an agent may only cancel it."""
    email = unique_email("browser-appeal-reasons")
    refused = await stored_refusal(pool, settings, email, "vcdpa", type="erasure")
    rid = await open_request(appeal_approval_site, pool, regime="vcdpa", appeal_of=refused, subject={"email": email},
                             identity_attested=True)
    page = await signed_in(browser, appeal_approval_site, pool, role, f"/console/requests/{rid}")
    await expect(page.locator("#status")).to_contain_text("awaiting approval", timeout=SLOW)
    if role == "agent":
        assert await offered(page) == {"cancel"}
        return
    reasons = f"On review, the records we kept are not needed for any pending claim <{role}>."
    await press(page, "approve", {"Note": "Claims file checked", "Why you grant the appeal": reasons},
                flash="Release approved")
    await expect(page.locator("#status")).to_contain_text("completed", timeout=SLOW)
    await expect(page.locator(".timeline")).to_contain_text(reasons, timeout=SLOW)
    said = " ".join(text_of(await wait_for_letter(mail_sink, rid, "response")).split())
    assert "Why we decided this" in said and reasons in said, said
    await shots(page, "appeal-approved")

@pytest.mark.parametrize("role", ["agent", "compliance", "admin"])
async def test_the_dispute_button_on_a_refused_correction_works_for_each_role_that_sees_it(
        role, browser, site, pool, settings, shots):  # noqa: F811
    """A CCPA correction we refused: compliance and an admin record the consumer's statement that
    the data is inaccurate (api/console/accuracy_disputes.py), and the page confirms it and shows it
    in the timeline as written; the page then says telling the data's recipients is owed, until they
    tick one and record that it was told (hDF). An agent is offered neither form, and reads that it
    is owed (forged posts: tests/test_authz_matrix.py, tests/test_accuracy_dispute_told.py)."""
    rid = await refused_correction(pool, settings, "browser-dispute")  # under a policy whose systems name recipients
    if role == "agent":
        await record_dispute(pool, rid, "My date of birth is 12 March 1984, not 21 March.", actor="test", once=None)
    page = await signed_in(browser, site, pool, role, f"/console/requests/{rid}")
    await expect(page.locator("#status")).to_contain_text("denied", timeout=SLOW)
    button = page.locator("#record-dispute")
    if role == "agent":
        await expect(button).to_have_count(0)
        await expect(page.locator("#dispute-owed")).to_contain_text("Still owed")
        await expect(page.locator("#record-dispute-told")).to_have_count(0)
        return
    statement = f"My date of birth is 12 March 1984, not 21 March <1984> ({role})."
    await page.get_by_label("The subject's statement").fill(statement)
    await button.click()
    await expect(page.locator("#accuracy-dispute .flash")).to_contain_text("Recorded", timeout=SLOW)
    await expect(page.locator(".timeline")).to_contain_text(
        f"Subject's dispute of the accuracy of their data recorded ({statement})", timeout=SLOW)
    await expect(page.locator("#dispute-owed")).to_contain_text("Still owed")
    await shots(page, "dispute-recorded")
    note = f"E-mailed their DPO the statement on the day <{role}>."
    await page.get_by_label("Financial services and accounting provider").check()
    await page.get_by_label("How and when they were told").fill(note)
    await page.locator("#record-dispute-told").click()
    await expect(page.locator("#accuracy-dispute .flash")).to_contain_text("who was told", timeout=SLOW)
    await expect(page.locator(".timeline")).to_contain_text(
        f"Recipients told of the dispute: Financial services and accounting provider ({note})", timeout=SLOW)
    await expect(page.locator("#dispute-owed")).to_have_count(0)
    await shots(page, "dispute-told")

async def test_a_refused_action_shows_inside_the_page(browser, site, pool, shots):  # noqa: F811
    rid = await open_request(site, pool)
    page = await signed_in(browser, site, pool, "agent", f"/console/requests/{rid}")
    await expect(page.locator("#live form")).to_have_count(2)

    # A page gone stale (its polls held): the request was cancelled elsewhere meanwhile.
    await page.route(POLLS, lambda route: route.abort())
    async with live_client(base_url=site, timeout=30) as http:
        r = await http.post(f"/v1/requests/{rid}/cancel", headers=await staff_headers(pool, "agent"),
                            json={"reason": "Withdrawn by phone", "withdrawn_by_subject": True})
    assert r.status_code == 200, r.text
    form = page.locator('#live form[hx-post$="/cancel"]')
    await form.get_by_label("Reason").fill("Withdrawn by e-mail")
    await form.get_by_label("The subject withdrew it themselves").check()
    await form.get_by_role("button").click()
    await expect(page.locator("#live [role=alert]")).to_contain_text(re.compile("closed|finished"))
    await assert_one_page(page)
    await shots(page, "stale")
    await page.unroute(POLLS)

    # A role too low, or no such action (a tampered form): said in the live region.
    other = await open_request(site, pool)
    await page.goto(f"{site}/console/requests/{other}")
    for path, says in (("approve", "approve needs the compliance role"), ("publish", "There is no action 'publish'")):
        await page.evaluate("""path => htmx.ajax('POST', path, {source: document.querySelector('#live form'),
                                                              target: '#live', swap: 'outerHTML'})""",
                            f"/console/requests/{other}/{path}")
        await expect(page.locator("#live [role=alert]")).to_contain_text(says)
        await assert_one_page(page)
    # An agent's cancellation without the subject's withdrawal (the box's `required` taken off)
    # would refuse the request: refused, and the request stays open.
    await page.route(POLLS, lambda route: route.abort())
    form = page.locator('#live form[hx-post$="/cancel"]')
    await form.get_by_label("The subject withdrew it themselves").evaluate("e => e.required = false")
    await form.get_by_label("Reason").fill("Looks like spam")
    await form.get_by_role("button").click()
    await expect(page.locator("#live [role=alert]")).to_contain_text(
        "a cancellation that is not the subject's own withdrawal refuses the request: it needs the compliance role")
    await assert_one_page(page)
    await page.unroute(POLLS)
    assert await pool.fetchval("SELECT status FROM dsr_requests WHERE id = $1", other) != "cancelled"
    await shots(page, "tampered")

    # A form whose CSRF token went stale: the refusal page takes the place of <main>, not of the region.
    await page.route(POLLS, lambda route: route.abort())
    form = page.locator('#live form[hx-post$="/cancel"]')
    await form.locator("input[name=csrf_token]").evaluate("e => e.value = 'stale'")
    await form.get_by_label("Reason").fill("Withdrawn by e-mail")
    await form.get_by_label("The subject withdrew it themselves").check()
    await form.get_by_role("button").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("CSRF check failed")
    await assert_one_page(page)
    await shots(page, "csrf")
