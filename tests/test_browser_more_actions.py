"""Console controls with legal effect that no other browser test presses, pressed in a real browser
(Debian's Chromium) by the roles that had not pressed them yet: compliance approving a portability
package after downloading it for review, compliance recording the subject's own withdrawal,
compliance answering an objection "Yes" and an admin "No", and compliance retrying a lift's task on
a completed restriction and recording a lift's refused letter as done by other means. Same setup as
tests/test_browser_actions.py, whose fixtures and helpers these tests use.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.support import text_of, wait_for_letter
from tests.test_browser import CHROMIUM, open_request, shots, signed_in, site  # noqa: F401 (fixtures)
from tests.test_browser_actions import POLLS, SLOW, letters, offered, press, systems_site  # noqa: F401
from tests.test_browser_review import downloaded_for_review, gated_site, staff_of  # noqa: F401 (fixture)
from tests.test_browser_untold import faulty_site  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
TASK = "email_marketing"  # the demo's OpenDSR processor: it can neither restrict nor lift
TASK_LABEL = "E-mail marketing (newsletters)"  # as the plan, and so the timeline, names it


async def events(pool, rid: str, kind: str) -> list:
    return await pool.fetch("SELECT actor, data FROM audit_events WHERE request_id = $1 AND event_type = $2 "
                            "ORDER BY seq", rid, kind)


async def test_compliance_reviews_a_portability_package_then_approves_it(
        browser, gated_site, pool, mail_sink, tmp_path, shots):  # noqa: F811
    url = gated_site
    rid = await open_request(url, pool, type="portability", identity_attested=True)
    page = await signed_in(browser, url, pool, "compliance", f"/console/requests/{rid}")
    await expect(page.locator("#status")).to_contain_text("awaiting approval", timeout=SLOW)
    assert await offered(page) == {"approve", "deny", "cancel", "extend"}
    name, entries = await downloaded_for_review(page, tmp_path)
    assert name == f"portability-{rid[:8]}-review.zip" and "summary.html" in entries
    await expect(page.locator(".timeline li", has_text="Package downloaded for review by browser compliance")
                 ).to_have_count(1, timeout=SLOW)
    await shots(page, "reviewed")

    await press(page, "approve", {"Note": "Portability package checked"}, flash="Release approved")
    await expect(page.locator("#status")).to_contain_text("completed", timeout=SLOW)
    await expect(letters(page)).to_contain_text("response", timeout=SLOW)
    await expect(page.locator(".timeline")).to_contain_text("Release approved")
    await expect(page.get_by_role("heading", name="Actions")).to_have_count(0)
    await shots(page, "approved")

    me = (await staff_of(page, pool)).actor
    package = await pool.fetchrow("SELECT id, kind FROM packages WHERE request_id = $1", rid)
    assert package["kind"] == "portability"
    reviewed, granted = await events(pool, rid, "package.reviewed"), await events(pool, rid, "approval.granted")
    assert [(e["actor"], e["data"]["package_id"]) for e in reviewed] == [(me, str(package["id"]))]
    assert [e["actor"] for e in granted] == [me]
    link = re.search(r"/portal/packages/[0-9a-f]{64}", text_of(await wait_for_letter(mail_sink, rid, "response")))
    assert link, "the response names no package link"


async def test_compliance_records_the_subjects_own_withdrawal(browser, site, pool, shots):  # noqa: F811
    """Mirrors the agent's withdrawal in tests/test_browser_actions.py: compliance may close a
    request unanswered (a refusal), so its box is not required; ticked, it is a withdrawal."""
    rid = await open_request(site, pool, days_ago=3)
    page = await signed_in(browser, site, pool, "compliance", f"/console/requests/{rid}")
    await expect(page.locator("#letters-title")).to_have_text("Letters to the subject (2)", timeout=SLOW)  # receipt, code
    assert "cancel" in await offered(page)
    await page.evaluate("window.notReloaded = true")
    reason = "Withdrawn by phone"
    await press(page, "cancel", {"Reason": reason, "The subject withdrew it themselves": "yes"}, flash="Request cancelled.")
    await expect(page.locator("#status")).to_contain_text("cancelled")
    await expect(page.locator(".timeline")).to_contain_text(f"Status: cancelled ({reason})")
    await expect(page.get_by_role("heading", name="Actions")).to_have_count(0)
    await expect(letters(page)).to_contain_text("cancellation", timeout=SLOW)
    assert await page.evaluate("window.notReloaded") is True
    await shots(page, "withdrawn")

    [cancelled] = await events(pool, rid, "status.cancelled")
    assert cancelled["data"] == {"reason": reason, "withdrawn_by_subject": True}
    assert cancelled["actor"] == (await staff_of(page, pool)).actor
    body = await pool.fetchval("SELECT body_text FROM sent_letters WHERE request_id = $1 AND purpose = 'cancellation'",
                               rid)
    assert "we have withdrawn your request" in " ".join(body.split()), body  # a confirmation, not a refusal


@pytest.mark.parametrize("role", ["compliance", "admin"])
async def test_objection_decision_each_role_the_answer_it_had_not_pressed(
        role, browser, systems_site, pool, shots):  # noqa: F811
    """tests/test_browser_actions.py has compliance answer No and an admin Yes: here the other way."""
    url = systems_site
    compelling = role == "compliance"
    answer, explanation, said = (
        ("Yes: processing continues", "Fraud checks on the account outweigh the objection", "so the processing continues")
        if compelling else
        ("No: stop the processing", "No overriding interest in analytics", "so we have stopped that processing"))
    rid = await open_request(url, pool, type="objection", objection_scope="legitimate_interest",
                             identity_attested=True, subject={"email": "ada@example.com"})
    page = await signed_in(browser, url, pool, role, f"/console/requests/{rid}")
    await expect(page.locator("#live")).to_contain_text("waiting for a compliance decision", timeout=SLOW)
    assert await offered(page) == {"decide-objection", "deny", "cancel", "extend"}
    await press(page, "decide-objection", {answer: "", "Explanation (sent to the subject)": explanation},
                flash="Decision recorded.")
    await expect(page.locator("#status")).to_contain_text("completed", timeout=SLOW)
    await expect(page.locator(".timeline")).to_contain_text("Objection decided")
    await expect(letters(page)).to_contain_text("response", timeout=SLOW)
    response = page.locator("#letters details", has=page.locator("summary", has_text=re.compile(r"^\s*response:")))
    await response.locator("summary").click()
    await expect(response.frame_locator("iframe").locator("body")).to_contain_text(said)
    await expect(response.frame_locator("iframe").locator("body")).to_contain_text(explanation)
    await shots(page, f"{role}-objection-decided")

    [decided] = await events(pool, rid, "objection.decided")
    assert decided["data"] == {"compelling_grounds": compelling, "explanation": explanation}
    assert decided["actor"] == (await staff_of(page, pool)).actor
    body = await pool.fetchval("SELECT body_text FROM sent_letters WHERE request_id = $1 AND purpose = 'response'", rid)
    assert said in " ".join(body.split()), body


async def restriction_in_force(page) -> None:
    """The restriction's own task (which OpenDSR cannot carry out) resolved: in force, its lift offered."""
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)
    await press(page, "resolve-task", {"System": TASK, "How it was handled": "Told them by phone, ticket 7"},
                flash="The task is recorded as handled.")
    await expect(page.locator("#restriction")).to_contain_text("active", timeout=SLOW)
    assert await offered(page) == {"lift-restriction"}


async def test_compliance_retries_a_lifts_task_on_a_completed_restriction(
        browser, systems_site, pool, shots):  # noqa: F811
    url = systems_site
    rid = await open_request(url, pool, type="restriction", identity_attested=True,
                             restriction_grounds=["needed_for_legal_claims"], subject={"email": "ada@example.com"})
    page = await signed_in(browser, url, pool, "compliance", f"/console/requests/{rid}")
    await restriction_in_force(page)
    await press(page, "lift-restriction", {"Reason (sent to the subject)": "The claim was settled on 3 March"},
                flash="The subject has been told")
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)  # nor can it lift
    await expect(page.locator("#status")).to_contain_text("completed")
    assert await offered(page) == {"retry-task", "resolve-task"}

    await press(page, "retry-task", {"System": TASK}, flash="The task runs again.")
    await expect(page.locator(".timeline")).to_contain_text(f"Task retried ({TASK_LABEL})", timeout=SLOW)
    await expect(page.locator("#restriction")).to_contain_text("lifting")
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)  # ran again: still cannot
    await shots(page, "lift-task-retried")
    retried = await events(pool, rid, "task.retried")
    assert [(e["actor"], e["data"]["system"]) for e in retried] == [((await staff_of(page, pool)).actor, TASK)]

    await press(page, "resolve-task", {"System": TASK, "How it was handled": "Told them it ended, ticket 8"},
                flash="The task is recorded as handled.")
    await expect(page.locator("#restriction")).to_contain_text("lifted", timeout=SLOW)
    await expect(page.locator(".timeline")).to_contain_text("Restriction lifted in every system")
    assert await offered(page) == set()
    await shots(page, "lifted")


async def test_compliance_records_a_refused_lift_letter_as_sent_by_other_means(
        browser, faulty_site, pool, shots):  # noqa: F811
    faults = faulty_site
    rid = await open_request(faults.url, pool, type="restriction", identity_attested=True,
                             restriction_grounds=["needed_for_legal_claims"], subject={"email": "ada@example.com"})
    page = await signed_in(browser, faults.url, pool, "compliance", f"/console/requests/{rid}")
    await restriction_in_force(page)
    faults.letters.add((rid, "restriction_lift"))  # for good: never fixed in this test
    await press(page, "lift-restriction", {"Reason (sent to the subject)": "The claim was settled on 3 March"},
                flash="Lift taken, but the subject has not been told yet, and nothing is lifted before")
    await expect(page.locator("#failed-step")).to_contain_text("sending the notice of the restriction's lift", timeout=SLOW)
    await expect(page.locator("#failed-step")).to_contain_text("the relay refuses this recipient")
    assert await offered(page) == {"retry-step", "skip-step"}
    await shots(page, "lift-letter-refused")

    note = "Posted the lift letter by hand, recorded delivery RR123"
    await press(page, "skip-step", {"How its work was done": note},
                flash="The step is recorded as done by other means.")
    await expect(page.locator("#failed-step")).to_have_count(0, timeout=SLOW)
    await expect(page.locator(".timeline")).to_contain_text("Failed step answered", timeout=SLOW)
    await expect(page.locator(".timeline")).to_contain_text(note)
    await expect(page.locator(".timeline")).to_contain_text(  # the outbox's copy is withdrawn: it never goes late
        "Skipped letter settled (notice of the restriction's lift: withdrawn, it never goes)", timeout=SLOW)
    await expect(page.locator("#restriction")).to_contain_text("lifting")
    # The subject counts as told: the lift now reaches the systems (OpenDSR cannot lift).
    await expect(page.locator("#tasks")).to_contain_text("needs attention", timeout=SLOW)
    await shots(page, "lift-letter-skipped")
    [answered] = await events(pool, rid, "step.resolved")
    assert answered["actor"] == (await staff_of(page, pool)).actor
    sent = "SELECT count(*) FROM sent_letters WHERE request_id = $1 AND purpose = 'restriction_lift'"
    assert await pool.fetchval(sent, rid) == 0  # recorded as done, never sent by us

    await press(page, "resolve-task", {"System": TASK, "How it was handled": "Told them it ended, ticket 9"},
                flash="The task is recorded as handled.")
    await expect(page.locator("#restriction")).to_contain_text("lifted", timeout=SLOW)
    assert await offered(page) == set()
