"""The console's buttons for what a request's work leaves to staff, pressed in a real browser by
each role that sees them: a system's task needing attention (retried, resolved), an objection
waiting for a decision, a restriction in force (lifted, its tasks resolved on the way), and a failed
step, on an open request or one closed with its letter unsent (retried, skipped); the Systems
table on a phone. Same setup as
tests/test_browser_actions.py, whose fixtures and helpers these tests use.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.test_browser import CHROMIUM, open_request, shots, signed_in  # noqa: F401 (fixtures)
from tests.test_browser_actions import (  # noqa: F401 (fixtures)
    POLLS,
    SLOW,
    letters,
    offered,
    press,
    refusing_relay,
    systems_site,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


@pytest.mark.parametrize("role", ["compliance", "admin"])
async def test_task_and_objection_buttons_work(role, browser, systems_site, pool, shots):  # noqa: F811
    url = systems_site
    rid = await open_request(url, pool, type="rectification", identity_attested=True,
                             subject={"email": "ada@example.com"}, corrections={"name": "Ada King"})
    page = await signed_in(browser, url, pool, role, f"/console/requests/{rid}")
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)  # OpenDSR cannot rectify
    assert await offered(page) == {"retry-task", "resolve-task", "deny", "cancel", "extend"}

    # A second tab, its polls held, keeps showing attempt 1 (docs/security.md, stale answers).
    stale = await page.context.new_page() if role == "compliance" else None
    if stale is not None:
        await stale.route(POLLS, lambda route: route.abort())
        await stale.goto(f"{url}/console/requests/{rid}")

    # Answered once the processor has the task again, not when it answers: it still cannot rectify.
    await press(page, "retry-task", {"System": "email_marketing"}, flash="The task runs again.")
    await expect(page.locator(".timeline")).to_contain_text("Task retried (E-mail marketing (newsletters))")
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)
    if stale is not None:  # its Resolve, meant for attempt 1, does not resolve attempt 2
        form = stale.locator('#live form[hx-post$="/resolve-task"]')
        await form.get_by_label("How it was handled").fill("Told them by e-mail, ticket 87")
        await form.get_by_role("button").click()
        await expect(stale.locator("#resolve-task-error")).to_contain_text(
            "attempt this was sent for (1) has been answered since, and its attempt now is another (2")
        await stale.close()
    await press(page, "resolve-task", {"System": "email_marketing", "How it was handled": "Told them by e-mail, ticket 88"},
                flash="The task is recorded as handled.")
    await expect(page.locator("#status")).to_contain_text("completed", timeout=SLOW)
    await expect(page.locator(".timeline")).to_contain_text("Task resolved by staff (E-mail marketing (newsletters))")
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

    # On a 390 px phone the Systems table (nine columns) scrolls inside its box, to its last
    # column, and the page does not scroll sideways.
    await page.goto(f"{url}/console/requests/{rid}")
    await page.set_viewport_size({"width": 390, "height": 844})
    last = page.locator("#tasks thead th").last
    await last.scroll_into_view_if_needed()
    await expect(last).to_be_in_viewport()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await shots(page, "phone")


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
    # Its ground with the article, and its systems by the policy's labels (not `crm`).
    await expect(page.locator("#restriction")).to_contain_text(
        "on the grounds: needed by the subject for legal claims (Art. 18(1)(c) GDPR)")
    await expect(page.locator("#restriction")).to_contain_text("CRM (contacts, support requests, live chat)")
    assert await offered(page) == {"lift-restriction"}
    if role == "compliance":
        agent = await signed_in(browser, url, pool, "agent", f"/console/requests/{rid}")
        await expect(agent.locator("#restriction")).to_contain_text("active")
        assert await offered(agent) == set()
        await agent.context.close()

    await press(page, "lift-restriction", {"Reason (sent to the subject)": "The claim was settled on 3 March"},
                flash="The subject has been told")
    await expect(letters(page)).to_contain_text("notice of the restriction's lift", timeout=SLOW)
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
            ("compliance", "deny", {"Ground": "manifestly unfounded (Art. 12(5) GDPR)",
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
