"""The buttons whose decision takes effect at once while its own step may fail, pressed in a real
browser when that step fails for good: an approval and an objection decision whose record the
database refuses, a lift whose letter the relay refuses. Each confirmation says what was not done
yet, the page shows the failed step with its buttons to compliance (an agent sees the step, not the
buttons), and a retry once the cause is fixed carries the request on. Same setup as
tests/test_browser_actions.py, on the demo systems (tests/fanout_stack.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from playwright.async_api import Page, expect
from temporalio import activity

from activities.letters import deliver_letter
from activities.lifecycle import LifecycleActivities
from schemas.workflow import EventRecord, LetterJob, LetterReceipt
from tests.fanout_stack import fanout_stack
from tests.support import unique_email
from tests.test_browser import CHROMIUM, open_request, shots, signed_in  # noqa: F401
from tests.test_browser_actions import SLOW, letters, offered, press
from workers.dsr_worker import activity_context, build_worker

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


@dataclass
class Faults:
    url: str = ""  # the site's
    letters: set[tuple[str, str]] = field(default_factory=set)  # (request, purpose) the relay refuses
    records: set[tuple[str, str]] = field(default_factory=set)  # (request, event type) the database refuses


@pytest.fixture
async def faulty_site(postgres, settings, pool, dev_server, tmp_path) -> AsyncIterator[Faults]:
    """The demo systems behind the site (attested erasures wait for approval), with a relay and a
    database that refuse, for good, what `Faults` names."""
    faults = Faults()
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path,
                            policy_updates={"approval_required_for": ["attested_erasure"]}) as stack:
        ctx = activity_context(stack.settings, pool)
        lifecycle = LifecycleActivities(ctx)

        @activity.defn(name="send_letter")
        async def send_letter(job: LetterJob) -> LetterReceipt:
            if (job.request_id, job.purpose) in faults.letters:
                raise ValueError("550 5.1.1 the relay refuses this recipient")
            return await deliver_letter(ctx, job)

        @activity.defn(name="record_event")
        async def record_event(event: EventRecord) -> None:
            if (event.request_id, event.event_type) in faults.records:
                raise ValueError("the audit table refuses this record (check constraint)")
            await lifecycle.record_event(event)

        async with build_worker(dev_server.client, stack.settings, pool, context=ctx,
                                activity_overrides=[send_letter, record_event]):
            faults.url = stack.api_url
            yield faults


async def failed_then_retried(page: Page, browser, faults: Faults, pool, why: str,  # noqa: F811
                              buttons: set[str], fixed: set, fault: tuple) -> None:
    """The failed step is shown with these buttons to compliance, and to an agent with those of
    them an agent may press; compliance then retries it once the cause is fixed."""
    await expect(page.locator("#failed-step")).to_contain_text(why, timeout=SLOW)
    assert await offered(page) == buttons
    agent = await signed_in(browser, faults.url, pool, "agent", page.url.removeprefix(faults.url))
    await expect(agent.locator("#failed-step")).to_contain_text(why)
    assert await offered(agent) == buttons & {"cancel"}
    await agent.context.close()
    fixed.discard(fault)
    await press(page, "retry-step", flash="The step runs again.")
    await expect(page.locator("#failed-step")).to_have_count(0, timeout=SLOW)


async def test_decisions_whose_own_step_fails_say_so_and_carry_on_once_retried(
        browser, faulty_site, pool, shots):  # noqa: F811
    faults = faulty_site
    refused_record = "the audit table refuses this record"

    # An approval the database does not record: nothing is released before it is on record.
    rid = await open_request(faults.url, pool, identity_attested=True)
    page = await signed_in(browser, faults.url, pool, "compliance", f"/console/requests/{rid}")
    await expect(page.locator("#status")).to_contain_text("awaiting approval", timeout=SLOW)
    faults.records.add((rid, "approval.granted"))
    await press(page, "approve", {"Note": "Identity checked by phone"},
                flash="Release approved, but it is not on record yet, and nothing is released before it is")
    await expect(page.locator("#status")).to_contain_text("awaiting approval")
    await shots(page, "approval-not-on-record")
    # Nothing else is offered: a second approval, a denial, a cancellation or an extension would
    # be refused until the approval is on record (before, all four buttons were shown, and refused).
    await expect(page.locator("#failed-step")).to_contain_text("recording “Release approved” in the audit trail", timeout=SLOW)
    await failed_then_retried(page, browser, faults, pool, refused_record, {"retry-step"},
                              faults.records, (rid, "approval.granted"))
    await expect(page.locator("#status")).to_contain_text("completed", timeout=SLOW)
    await expect(page.locator(".timeline")).to_contain_text("Release approved")
    await expect(page.locator(".timeline")).to_contain_text(f"A step failed (recording “Release approved” in the audit trail: ValueError: {refused_record}")
    await expect(letters(page)).to_contain_text("response", timeout=SLOW)
    await shots(page, "approval-recorded-on-retry")

    # An objection decision the database does not record: the systems are told once it is.
    rid = await open_request(faults.url, pool, type="objection", objection_scope="legitimate_interest",
                             identity_attested=True, subject={"email": "ada@example.com"})
    await page.goto(f"{faults.url}/console/requests/{rid}")
    await expect(page.locator("#live")).to_contain_text("waiting for a compliance decision", timeout=SLOW)
    faults.records.add((rid, "objection.decided"))
    await press(page, "decide-objection", {"No: stop the processing": "",
                                           "Explanation (sent to the subject)": "No overriding interest in analytics"},
                flash="Decision taken, but not yet on record")
    await shots(page, "decision-not-on-record")
    # As for the approval: a denial, a cancellation or an extension would be refused until the
    # decision is on record, so only the retry is offered (before, all three were shown).
    await failed_then_retried(page, browser, faults, pool, refused_record, {"retry-step"},
                              faults.records, (rid, "objection.decided"))
    await expect(page.locator("#status")).to_contain_text("completed", timeout=SLOW)
    await expect(letters(page)).to_contain_text("response", timeout=SLOW)

    # A lift whose letter the relay refuses: nothing is lifted before the subject is told.
    rid = await open_request(faults.url, pool, type="restriction", identity_attested=True,
                             restriction_grounds=["needed_for_legal_claims"], subject={"email": "ada@example.com"})
    await page.goto(f"{faults.url}/console/requests/{rid}")
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)  # OpenDSR cannot restrict
    await press(page, "resolve-task", {"System": "email_marketing", "How it was handled": "Told them by phone, ticket 7"},
                flash="The task is recorded as handled.")
    await expect(page.locator("#restriction")).to_contain_text("active", timeout=SLOW)
    faults.letters.add((rid, "restriction_lift"))
    await press(page, "lift-restriction", {"Reason (sent to the subject)": "The claim was settled on 3 March"},
                flash="Lift taken, but the subject has not been told yet, and nothing is lifted before")
    await expect(page.locator("#restriction")).to_contain_text("lifting")
    await expect(page.locator("#failed-step")).to_contain_text("sending the notice of the restriction's lift", timeout=SLOW)
    await shots(page, "lift-letter-refused")
    await failed_then_retried(page, browser, faults, pool, "the relay refuses this recipient", {"retry-step", "skip-step"},
                              faults.letters, (rid, "restriction_lift"))
    await expect(letters(page)).to_contain_text("notice of the restriction's lift", timeout=SLOW)
    await expect(page.locator("#restriction")).to_contain_text("lifting")
    await shots(page, "lift-letter-sent-on-retry")
    # Only now are the systems told: the OpenDSR processor, which cannot lift, needs attention.
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)


async def test_task_answers_whose_record_fails_say_so_and_count_once_retried(
        browser, faulty_site, pool, shots):  # noqa: F811
    """Staff's retry and resolution of a system's task stand at once and owe their records
    (workflows/task_fanout.py): a record the database refuses for good is told on the button's
    confirmation and shown as the failed step; the task runs again, or the response goes out, only
    once compliance has run that step again."""
    faults = faulty_site
    rid = await open_request(faults.url, pool, type="restriction", identity_attested=True,
                             restriction_grounds=["needed_for_legal_claims"], subject={"email": unique_email("untold-answer")})
    page = await signed_in(browser, faults.url, pool, "compliance", f"/console/requests/{rid}")
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)  # OpenDSR cannot restrict

    faults.records.add((rid, "task.retried"))
    await press(page, "retry-task", {"System": "email_marketing"},
                flash="Retry taken, but it is not on record yet, and the task runs again only once it is")
    await expect(page.locator("#failed-step")).to_contain_text("recording “Task retried” in the audit trail", timeout=SLOW)
    await shots(page, "task-retry-not-on-record")
    # The request may still be closed meanwhile (a retry then never runs: tests/test_task_answers.py),
    # and the task is not offered again: its answer stands.
    await failed_then_retried(page, browser, faults, pool, "the audit table refuses this record",
                              {"retry-step", "deny", "cancel", "extend"}, faults.records, (rid, "task.retried"))
    await expect(page.locator(".timeline")).to_contain_text("Task retried", timeout=SLOW)
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)  # ran again: still cannot

    faults.records.add((rid, "task.resolved"))
    await press(page, "resolve-task", {"System": "email_marketing", "How it was handled": "Told them by phone, ticket 9"},
                flash="Resolution taken, but it is not on record yet, and the response waits until it is")
    await expect(page.locator("#failed-step")).to_contain_text("recording “Task resolved by staff” in the audit trail", timeout=SLOW)
    await shots(page, "task-resolution-not-on-record")
    assert "response" not in await letters(page).inner_text()
    await failed_then_retried(page, browser, faults, pool, "the audit table refuses this record",
                              {"retry-step", "deny", "cancel", "extend"}, faults.records, (rid, "task.resolved"))
    await expect(page.locator("#restriction")).to_contain_text("active", timeout=SLOW)
    await expect(letters(page)).to_contain_text("response", timeout=SLOW)
