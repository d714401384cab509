"""Every action button the console's request page can render, pressed in a real browser by each
role that sees it (agent, compliance, admin), with its visible outcome: the confirmation, the
status, the letter sent, the timeline. And a refused action shows its refusal inside the page, never a second
page nested in it. Same setup as tests/test_browser.py (Debian's Chromium, uvicorn, a worker).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from playwright.async_api import Page, expect
from temporalio import activity

from activities.letters import deliver_letter
from schemas.workflow import LetterJob, LetterReceipt
from tests.fanout_stack import fanout_stack
from tests.support import eventually, live_client, staff_headers, text_of, wait_for_letter
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

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")
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
    if role == "agent":  # the audit timeline is compliance's (api/staff_actions.py READABLE_BY)
        await expect(page.locator("#live")).to_contain_text("The audit timeline is for compliance.")
        await expect(page.locator(".timeline")).to_have_count(0)
    else:
        await expect(page.locator(".timeline")).to_contain_text("New verification code sent")
    await expect(page.locator("#letters-title")).to_have_text("Letters to the subject (3)", timeout=SLOW)
    if role != "agent":
        extended = await pool.fetchval("SELECT extended_due_date FROM dsr_requests WHERE id = $1", rid)
        await press(page, "extend", {"Reason (sent to the subject)": "The request covers nine systems"},
                    flash="Deadline extended")
        await expect(page.locator("#due-date")).to_contain_text(str(extended))
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
    await press(page, "deny", {"Ground": "manifestly_unfounded",
                               "Explanation (sent to the subject)": "The same request was answered last week"},
                flash="Request denied")
    await expect(page.locator("#status")).to_contain_text("denied", timeout=SLOW)
    await expect(letters(page)).to_contain_text("denial", timeout=SLOW)
    await shots(page, "denied")


@pytest.mark.parametrize("role", ["compliance", "admin"])
async def test_task_and_objection_buttons_work(role, browser, systems_site, pool, shots):  # noqa: F811
    url = systems_site
    rid = await open_request(url, pool, type="rectification", identity_attested=True,
                             subject={"email": "ada@example.com"}, corrections={"name": "Ada King"})
    page = await signed_in(browser, url, pool, role, f"/console/requests/{rid}")
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)  # OpenDSR cannot rectify
    assert await offered(page) == {"retry-task", "resolve-task", "deny", "cancel", "extend"}

    # Answered once the processor has the task again, not when it answers: it still cannot rectify.
    await press(page, "retry-task", {"System": "email_marketing"}, flash="The task runs again.")
    await expect(page.locator(".timeline")).to_contain_text("Task retried (email_marketing)")
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)
    await press(page, "resolve-task", {"System": "email_marketing", "How it was handled": "Told them by e-mail, ticket 88"},
                flash="The task is recorded as handled.")
    await expect(page.locator("#status")).to_contain_text("completed", timeout=SLOW)
    await expect(page.locator(".timeline")).to_contain_text("Task resolved by staff (email_marketing)")
    await shots(page, "task-resolved")

    objection = await open_request(url, pool, type="objection", objection_scope="legitimate_interest",
                                   identity_attested=True, subject={"email": "ada@example.com"})
    await page.goto(f"{url}/console/requests/{objection}")
    await expect(page.locator("#live")).to_contain_text("waiting for a compliance decision", timeout=SLOW)
    assert await offered(page) == {"decide-objection", "deny", "cancel", "extend"}
    compelling = role == "admin"  # compliance answers No, an admin Yes: each answer pressed once
    answer, explanation, said = (
        ("Yes: processing continues", "Fraud checks on the account outweigh the objection", "so the processing continues")
        if compelling else
        ("No: stop the processing", "No overriding interest in analytics", "so we have stopped that processing"))
    await press(page, "decide-objection", {answer: "", "Explanation (sent to the subject)": explanation},
                flash="Decision recorded.")
    await expect(page.locator("#status")).to_contain_text("completed", timeout=SLOW)
    await expect(letters(page)).to_contain_text("response", timeout=SLOW)
    response = page.locator("#letters details", has=page.locator("summary", has_text=re.compile(r"^\s*response:")))
    await response.locator("summary").click()
    await expect(response.frame_locator("iframe").locator("body")).to_contain_text(said)
    await expect(response.frame_locator("iframe").locator("body")).to_contain_text(explanation)
    await shots(page, "objection-decided")
    body = await pool.fetchval("SELECT body_text FROM sent_letters WHERE request_id = $1 AND purpose = 'response'",
                               objection)
    assert said in " ".join(body.split()), body


async def test_lift_restriction_button_tells_the_subject_then_lifts(browser, systems_site, pool, shots):  # noqa: F811
    """A completed restriction in force shows its ground and offers compliance and admins (not
    agents) its lift; the lift's tasks are resolved on the same page until the restriction is
    recorded lifted. Each of compliance and an admin lifts one, in turn (the same subject's)."""
    url = systems_site
    for role in ("compliance", "admin"):
        await lift_a_restriction(role, browser, url, pool, shots)


async def lift_a_restriction(role, browser, url, pool, shots):  # noqa: F811
    rid = await open_request(url, pool, type="restriction", identity_attested=True,
                             restriction_grounds=["needed_for_legal_claims"], subject={"email": "ada@example.com"})
    page = await signed_in(browser, url, pool, role, f"/console/requests/{rid}")
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)  # OpenDSR cannot restrict
    await press(page, "resolve-task", {"System": "email_marketing", "How it was handled": "Told them by phone, ticket 7"},
                flash="The task is recorded as handled.")
    await expect(page.locator("#restriction")).to_contain_text("active", timeout=SLOW)
    await expect(page.locator("#restriction")).to_contain_text("needed for legal claims")
    assert await offered(page) == {"lift-restriction"}
    if role == "compliance":
        agent = await signed_in(browser, url, pool, "agent", f"/console/requests/{rid}")
        await expect(agent.locator("#restriction")).to_contain_text("active")
        assert await offered(agent) == set()
        await agent.context.close()

    await press(page, "lift-restriction", {"Reason (sent to the subject)": "The claim was settled on 3 March"},
                flash="The subject has been told")
    await expect(letters(page)).to_contain_text("restriction lift", timeout=SLOW)
    await expect(page.locator("#restriction")).to_contain_text("lifting")
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)  # nor lift one
    assert await offered(page) == {"retry-task", "resolve-task"}
    await press(page, "resolve-task", {"System": "email_marketing", "How it was handled": "Told them it ended, ticket 8"},
                flash="The task is recorded as handled.")
    await expect(page.locator("#restriction")).to_contain_text("lifted", timeout=SLOW)
    await expect(page.locator(".timeline")).to_contain_text("Restriction lifted in every system")
    assert await offered(page) == set()
    await shots(page, f"{role}-restriction-lifted")
    await page.context.close()


async def test_failed_step_buttons_work_for_each_role_that_sees_them(browser, refusing_relay, pool, shots):  # noqa: F811
    """An acknowledgement the relay refuses flags its step at once; compliance and an admin each
    have one run again once the relay is fixed, and record another as sent by hand."""
    url, fixed = refusing_relay.url, refusing_relay.fixed
    opened = {role: [await open_request(url, pool, identity_attested=True) for _ in range(2)]
              for role in ("compliance", "admin")}
    for role, (retried, skipped) in opened.items():
        page = await signed_in(browser, url, pool, role, f"/console/requests/{retried}")
        await expect(page.locator("#failed-step")).to_contain_text("the relay refuses this sender", timeout=SLOW)
        assert await offered(page) == {"retry-step", "skip-step", "deny", "cancel", "extend"}
        fixed.add(retried)
        await press(page, "retry-step", flash="The step runs again.")
        await expect(letters(page)).to_contain_text("acknowledgement", timeout=SLOW)
        await expect(page.locator("#failed-step")).to_have_count(0)
        await shots(page, f"{role}-step-retried")

        await page.goto(f"{url}/console/requests/{skipped}")
        await expect(page.locator("#failed-step")).to_contain_text("the relay refuses this sender", timeout=SLOW)
        assert await offered(page) == {"retry-step", "skip-step", "deny", "cancel", "extend"}
        await press(page, "skip-step", {"How its work was done": f"Posted the acknowledgement by hand ({role})"},
                    flash="The step is recorded as done by other means.")
        await expect(page.locator(".timeline")).to_contain_text("Failed step answered", timeout=SLOW)
        await expect(page.locator("#failed-step")).to_have_count(0)
        await shots(page, f"{role}-step-skipped")
        sent = "SELECT count(*) FROM sent_letters WHERE request_id = $1 AND purpose = 'acknowledgement'"
        assert await pool.fetchval(sent, skipped) == 0  # recorded as done, never sent by us


async def test_a_closed_request_whose_letter_failed_offers_its_step_to_each_role_that_sees_it(
        browser, refusing_relay, pool, shots):  # noqa: F811
    """A denial (compliance) and a withdrawal (an admin) whose letters the relay refuses: the
    request is closed at once, the page says the subject was not told and shows the failed step
    with its buttons; a retry once the relay is fixed sends the denial, a skip records the
    withdrawal's confirmation as given by other means. An agent sees the step, not the buttons."""
    relay = refusing_relay
    relay.acknowledgements = True
    for role, action, fields, retried in (
            ("compliance", "deny", {"Ground": "manifestly_unfounded",
                                    "Explanation (sent to the subject)": "The same request was answered last week"}, True),
            ("admin", "cancel", {"Reason": "Withdrawn by phone", "The subject withdrew it themselves": "yes"}, False)):
        rid = await open_request(relay.url, pool)  # waits for the subject's code: open
        relay.closing.add(rid)
        page = await signed_in(browser, relay.url, pool, role, f"/console/requests/{rid}")
        await expect(letters(page)).to_contain_text("acknowledgement", timeout=SLOW)
        await press(page, action, fields, flash="but the subject has not been sent the letter yet")
        await expect(page.locator("#failed-step")).to_contain_text("the relay refuses this recipient", timeout=SLOW)
        assert await offered(page) == {"retry-step", "skip-step"}
        await expect(page.locator("#live")).to_contain_text("not verified (the request closed first)")
        await shots(page, f"{role}-closing-letter-failed")
        agent = await signed_in(browser, relay.url, pool, "agent", f"/console/requests/{rid}")
        await expect(agent.locator("#failed-step")).to_contain_text("the relay refuses this recipient")
        assert await offered(agent) == set()
        await agent.context.close()
        if retried:
            relay.closing.discard(rid)
            await press(page, "retry-step", flash="The step runs again.")
            await expect(letters(page)).to_contain_text("denial", timeout=SLOW)
        else:
            await press(page, "skip-step", {"How its work was done": "Confirmed the withdrawal by phone"},
                        flash="The step is recorded as done by other means.")
            await expect(page.locator(".timeline")).to_contain_text("Failed step answered", timeout=SLOW)
        await expect(page.locator("#failed-step")).to_have_count(0, timeout=SLOW)
        await expect(page.locator("#status")).to_contain_text("denied" if retried else "cancelled")
        await shots(page, f"{role}-closing-letter-{'retried' if retried else 'skipped'}")
        await page.context.close()


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
