"""Every button, link that acts and form of the staff console, for every role that sees it: the
browser test (Debian's Chromium) that presses it as each such role, and the one showing that a role
that must not see it is not shown it and cannot forge its post. Roles: agent < compliance < admin
(api/auth.py); what each may do: api/staff_actions.py (STAFF_ACTIONS), api/staff_writes.py (TEAM_ROLES,
DEFERRED_ROLES, RESUME_ROLE, SUPPRESSION_ROLES), read: api/read_models/staff_reach.py (READABLE_BY); the HTTP matrix: tests/test_authz_matrix.py. Every form's
address takes its method for every role, in every status: tests/test_browser_audit_statuses.py.

Files are tests/test_browser_<name>.py ("browser" is tests/test_browser.py, "every" this module);
A = agent, C = compliance, D = admin; "all" = A, C, D. Test names are shortened.

| control (page)                                 | seen by  | pressed, per role                                        | not shown / forged post refused           |
|------------------------------------------------|----------|----------------------------------------------------------|-------------------------------------------|
| header: "dsrflow console"                      | all      | navigation back_links (all)                              |                                           |
| header: Queue, Inbox, New request              | all      | console header_links (all)                               |                                           |
| header: Dashboard                              | C, D     | console header_links (C, D)                              | A: console header_links; GET: navigation  |
| header: Sign out                               | all      | console header_links (all)                               |                                           |
| header: Marketing suppressions                 | all      | every suppressions (all)                                 |                                           |
| suppressions: Check                            | all      | every suppressions (all)                                 |                                           |
| suppressions: Lift (a suppressed address), the | C, D     | every suppressions (C, D; refused empty, then lifted)    | A: every suppressions (not shown; forged  |
| objection's link                               |          |                                                          | refused); suppression_lift (HTTP)         |
| header: Legal holds                            | C, D     | deferred place_and_release_a_legal_hold (C, D)           | A: deferred (not shown, GET 403);         |
|                                                |          |                                                          | authz_matrix                              |
| holds: Place the hold (each field, a system and| C, D     | deferred place_and_release_a_legal_hold (C, D; refused   | A: authz_matrix (403); hostile_forms      |
| a data category ticked)                        |          | short reason, past date, then placed)                    |                                           |
| holds: a row's Release, its "Why it ends"      | C, D     | deferred place_and_release_a_legal_hold (C, D; refused   | A: authz_matrix (403); hostile_forms      |
|                                                |          | short reason, then released saying why)                  |                                           |
| holds: Older released holds, "back to the last | C, D     | deferred place_and_release_a_legal_hold (C, D)           | A: authz_matrix (403, with `?released=`)  |
| released", a released hold's request link      |          |                                                          |                                           |
| header: Tokens                                 | D        | staff_token_browser admin_creates (D)                    | A, C: staff_token_browser (not shown, GET |
|                                                |          |                                                          | 403); authz_matrix                        |
| tokens: Create the token (role, label, expiry),| D        | staff_token_browser admin_creates (D)                    | A, C: authz_matrix (403)                  |
| "show only those" expiring                     |          |                                                          |                                           |
| tokens: a row's Revoke                         | D        | staff_token_browser admin_revokes (D); the last admin's  | A, C: authz_matrix (403)                  |
|                                                |          | refused, one's own signs out: staff_token_revoke (HTTP)  |                                           |
| tokens: a row's "Revoke it and the N tokens it | D        | staff_token_browser revokes_..._tokens_it_created (D);   | A, C: staff_token_lineage (403, forged    |
| created" (only when N > 0)                     |          | leaving no admin refused: staff_token_lineage (HTTP)     | post and REST), authz_matrix (403)        |
| header: Skip to content                        | all      | audit_queue skips_to_the_content (all)                   |                                           |
| sign-in: Sign in                               | visitor  | browser signed_in (every test); unknown token: every     |                                           |
| sign-in: privacy portal, API documentation     | visitor  | navigation portal_language, api_documentation            |                                           |
| queue: Mine, Unassigned                        | all      | team takes_assigns (all)                                 |                                           |
| queue: Show, each filter, search box           | all      | audit_queue each_queue_filter (all); browser (A); team   |                                           |
|                                                |          | ("Assigned to", all)                                     |                                           |
| queue: Open requests                           | all      | audit_queue each_queue_filter, saves_a_view (all)        |                                           |
| queue: Save view                               | all      | team, audit_queue saves_a_view (all); refused: every     |                                           |
| queue: a saved view, its delete button         | its own  | team, audit_queue saves_a_view (all)                     | another's view: authz_matrix (404)        |
| queue: a row's link, Next page                 | all      | navigation pages_the_queue (all); console (A)            |                                           |
| new request: Open the request (each field)     | all      | console (A), audit_new_request (A, C, D), review (A, C)  |                                           |
| request: Workflow in the Temporal UI           | C, D     | audit_temporal_ui (C, D)                                 | A: audit_temporal_ui (not shown), codec   |
|                                                |          |                                                          | 403 (authz_matrix)                        |
| request: Evidence pack; its Back, JSON links   | C, D     | browser (C), console (D), navigation back_links (C, D)   | A: navigation back_links (not shown, GET  |
|                                                |          |                                                          | refused)                                  |
| request: Dashboard                             | C, D     | navigation back_links (C, D)                             | A: navigation back_links                  |
| request: Take it, Assign                       | all      | team takes_assigns (all)                                 |                                           |
| request: Add note                              | all      | team takes_assigns (all); refused and added, told beside | (internal notes are every role's)         |
|                                                |          | the form: every (all)                                    |                                           |
| request: other requests' links, "all with ..." | all      | navigation pages_the_queue (all)                         |                                           |
| request: a letter, a staff alert, their links  | all      | audit_request reads_a_letter (all)                       |                                           |
| request: Resume the request                    | C, D     | resume (C, D)                                            | A: resume (not shown); forged: every      |
| request: Record the dispute (a refused         | C, D     | actions dispute_button (C, D)                            | A: actions dispute_button (not shown);    |
| correction)                                    |          |                                                          | forged: authz_matrix, attack_new_inputs   |
| request: Record that recipients were told (a   | C, D     | actions dispute_button (C, D; a recipient ticked);       | A: actions dispute_button (not shown,     |
| dispute recorded; each recipient's box, None)  |          | accuracy_dispute_told (C; None ticked, refused empty)    | reads it owed); forged:                   |
|                                                |          |                                                          | accuracy_dispute_told, authz_matrix       |
| request: Record that it was lifted (a held     | C, D     | lift_by_hand (C; its note field)                         | A: lift_by_hand (reads the item, no       |
| lift handed to staff; its note field)          |          |                                                          | button); forged: authz_matrix             |
| request: Ask ... again (deferred erasure at a  | C, D     | deferred (C), audit_request (D), deferred_retry (C, D)   | A: deferred, deferred_retry (not shown,   |
| processor); in our own system: Erase it again  |          | (its words: letter_kept_closed, not a browser test)      | forged refused)                           |
| in the system "..."                            |          |                                                          |                                           |
| request: Record as erased (deferred erasure)   | C, D     | deferred (D), audit_request (C), deferred_retry (C)      | A: deferred, deferred_retry (not shown,   |
|                                                |          |                                                          | forged refused)                           |
| live: Send a new code                          | all      | actions each_button (all); resume (C)                    |                                           |
| live: Cancel request                           | all      | actions each_button (all), more_actions (C withdrawal),  | A's refusal (box unticked): actions       |
|                                                |          | task_actions closed_request (D)                          | refused_action                            |
| live: Extend                                   | C, D     | browser (C), actions each_button (C, D), no_worker (C)   | A: actions each_button; forged: every     |
| live: Deny                                     | C, D     | actions each_button (C, D), task_actions closed (C),     | A: actions each_button; forged: every     |
|                                                |          | owed (C), team deny_waits (C, no ground: not sent)       |                                           |
| live: Approve, download it for review          | C, D     | actions each_button (C, D), console (C, D), more_actions | A: review (not shown, package GET         |
|                                                | (not the | (C), review download (C, D), untold (C)                  | refused), actions refused_action (forged);|
|                                                | attester)|                                                          | the attester: review                      |
| live: Record the decision (objection)          | C, D     | task_actions (C No, D Yes), more_actions (C Yes, D No),  | A: forged: every                          |
|                                                |          | untold (C)                                               |                                           |
| live: Retry (a system's task)                  | C, D     | task_actions (C, D), more_actions (C), untold (C)        | A: task_actions lift (not shown); every   |
| live: Resolve (a system's task)                | C, D     | task_actions (C, D), more_actions (C), untold (C)        | A: task_actions lift; forged: every       |
| live: Resolve (a task waiting on its SaaS,     | C, D     | tests/test_saas_outage_carry_on.py staff_resolving (C, D)| A: (the same action) forged: every        |
| tried again by itself; Retry not offered)      |          |                                                          |                                           |
| live: Run again (a failed step)                | C, D     | task_actions failed_step (C, D), closed (C), untold (C)  | A: task_actions closed; forged: every     |
| live: Record as done (a failed step)           | C, D     | task_actions failed_step (C, D), closed (D), more (C)    | A: task_actions closed; forged: every     |
| live: Tell the subject and lift                | C, D     | task_actions lift (C, D), more_actions (C), untold (C)   | A: task_actions lift; forged: every       |
| inbox: a message's link, Next/First page       | all      | inbox (all), navigation pages_the_inbox (all)            |                                           |
| message: Open the request, Attach, Dismiss     | all      | inbox (all), audit_request (attach to nobody, details,   |                                           |
|                                                |          | all); a colleague decided first: every (A Attach,        |                                           |
|                                                |          | C Dismiss, D Open the request)                           |                                           |
| message: link to the request it became         | all      | audit_request decided_messages_link (all)                |                                           |
| dashboard: Per month, Open requests by due week| C, D     | audit_queue skips_to_the_content (C, D)                  | A: navigation back_links (page refused)   |
| problem page: Back to the queue                | all      | navigation back_links (all)                              |                                           |
| refused page: Back to the console              | all      | navigation back_links (A); a stale form refused: every   |                                           |
|                                                |          | (D)                                                      |                                           |
| refused page: Back to the request (a form on a | all      | a stale form refused: every (C)                          |                                           |
| request's page refused)                        |          |                                                          |                                           |

The tests below press what the table's "every" names. They share one site, without a worker: the
requests are stored by the intake store with no workflow (their pages answer from the stored row),
as tests/test_browser_navigation.py does; nothing here needs a workflow to run."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect

from api.auth import create_token
from api.staff_actions import STAFF_ACTIONS
from dsrflow.domain.references import short_reference
from schemas.staff_tokens import ROLES
from tests.support import unique_email
from tests.test_browser import CHROMIUM, served_site, signed_in
from tests.test_browser_actions import POLLS, assert_one_page, offered
from tests.test_browser_audit_queue import stopped, stored
from tests.test_mailbox_console import filed, raw_mail
from tests.test_suppression_lift import CONSENT, suppressed_objection

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
# The request page's actions an agent may not take, from the table that decides it.
NOT_AN_AGENTS = sorted(name for name, action in STAFF_ACTIONS.items() if action.role != "agent")
# A value for every field of those forms: what a forged post sends (each form reads its own).
FORGED_FIELDS = {"reason": "Forged by an agent's browser", "reason_code": "excessive",
                 "explanation": "Forged by an agent's browser", "system": "crm", "note": "Forged by an agent",
                 "compelling_grounds": "false"}


@pytest.fixture(scope="module")
async def every_site(settings, pool, dev_server) -> AsyncIterator[str]:
    async with served_site(settings, pool, dev_server.client, f"every-{uuid.uuid4().hex[:8]}", worker=False) as url:
        yield url


async def audit_count(pool, rid: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1::uuid", rid)


async def test_an_unknown_token_is_refused_beside_the_field_and_the_right_one_signs_in(browser, every_site, pool):
    site = every_site
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{site}/console/requests/new")
    await expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
    token = page.get_by_label("Staff token")
    await token.fill("not-a-token-" + uuid.uuid4().hex)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("That token is unknown or has been revoked.")
    await expect(token).to_have_attribute("aria-invalid", "true")
    await expect(token).to_be_focused()
    await expect(page.get_by_role("navigation", name="Console")).to_have_count(0)  # not signed in

    await token.fill(await create_token(pool, "agent", "browser agent"))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{site}/console/requests/new")  # where the visitor was going
    await expect(page.get_by_role("heading", level=1)).to_have_text("New request")
    await expect(page.get_by_role("navigation", name="Account")).to_contain_text("Signed in as agent")


async def test_each_role_is_told_beside_the_form_what_became_of_its_note_and_its_view(
        browser, every_site, pool, settings):
    """A note of blanks is refused, and the refusal shows beside the notes form, where the page
    comes back to (#notes, at the foot of the page): it showed in the team panel at the top, out of
    sight, and so did "Note added". A view named with blanks is refused beside its form."""
    site = every_site
    for role in ROLES:
        rid = await stored(pool, settings, unique_email("every.note"), "erasure", due_in=9)
        page = await signed_in(browser, site, pool, role, f"/console/requests/{rid}")
        notes, box = page.locator("#notes"), page.get_by_label("New note")
        await box.fill("   ")
        await page.get_by_role("button", name="Add note").click()
        await expect(page).to_have_url(re.compile(rf"/console/requests/{rid}\?.*#notes$"))
        await expect(notes.get_by_role("alert")).to_have_text("write the note first")
        await expect(box).to_have_attribute("aria-invalid", "true")
        await expect(box).to_have_attribute("aria-describedby", "note-error")
        await expect(page.locator("#team [role=alert]")).to_have_count(0)
        await expect(notes.locator(".note-body")).to_have_count(0)

        text = f"Called the subject ({role}): the second address is theirs too."
        await box.fill(text)
        await page.get_by_role("button", name="Add note").click()
        await expect(notes.get_by_role("status")).to_have_text("Note added (staff only; never sent to the subject).")
        await expect(notes.locator(".note-body")).to_have_text(text)
        await expect(notes.get_by_role("alert")).to_have_count(0)
        await expect(box).not_to_have_attribute("aria-invalid", "true")
        await expect(page.locator("#team [role=status]")).to_have_count(0)

        await page.get_by_role("link", name="Queue").click()
        await page.get_by_label("Save these filters as").fill("   ")
        await page.get_by_role("button", name="Save view").click()
        await expect(page.locator("#view-error")).to_have_text("name the view in 1 to 60 characters")
        await expect(page.get_by_label("Save these filters as")).to_have_attribute("aria-invalid", "true")
        await expect(page.locator(".saved-view")).to_have_count(0)
        await page.context.close()


async def test_each_inbox_button_pressed_after_a_colleague_decided_says_who_did(browser, every_site, pool, settings):
    """A message's page left open while a colleague decides it: each button then pressed changes
    nothing, and names the colleague as the request page names staff. It named the recorded actor
    ("compliance:1f0c9a2e"), which tells nobody who it was."""
    site = every_site
    for role, button, colleague, decision in (("agent", "Attach", "compliance", "dismissed"),
                                              ("compliance", "Dismiss: not a request", "admin", "attached"),
                                              ("admin", "Open the request", "agent", "dismissed")):
        message = await filed(settings, pool, raw_mail(unique_email("every.stale"), "Please erase my data."))
        existing = await stored(pool, settings, unique_email("every.existing"), "erasure", due_in=12)
        stale = await signed_in(browser, site, pool, role, f"/console/inbox/{message}")
        if button == "Attach":
            await stale.get_by_label("Request id").fill(short_reference(existing))
        elif button.startswith("Dismiss"):
            await stale.get_by_label("Reason").fill("advertising")

        other = await signed_in(browser, site, pool, colleague, f"/console/inbox/{message}")
        if decision == "dismissed":
            await other.get_by_label("Reason").fill("not a request: a newsletter reply")
            await other.get_by_role("button", name="Dismiss: not a request").click()
            await expect(other).to_have_url(f"{site}/console/inbox")
        else:
            await other.get_by_label("Request id").fill(short_reference(existing))
            await other.get_by_role("button", name="Attach").click()
            await expect(other).to_have_url(f"{site}/console/requests/{existing}")
        await other.context.close()

        await stale.get_by_role("button", name=button).click()
        await expect(stale.get_by_role("alert")).to_have_text(
            f"This message was already {decision} by browser {colleague} ({colleague}); nothing was changed.")
        await expect(stale.get_by_role("button", name=button)).to_have_count(0)  # decided: nothing to press
        row = await pool.fetchrow("SELECT status, decided_by FROM mailbox_messages WHERE id = $1", message)
        assert row["status"] == decision and row["decided_by"].startswith(f"{colleague}:")
        await stale.context.close()


async def forge(page: Page, path: str) -> None:
    """Post `path` from the page as htmx would, with the page's CSRF token (the notes form's) and
    every field an action's form has."""
    await page.evaluate("""([path, fields]) => htmx.ajax('POST', path, {
        source: document.querySelector('#live'), target: '#live', swap: 'outerHTML',
        values: {...fields, csrf_token: document.querySelector('#notes input[name=csrf_token]').value}})""",
                        [path, FORGED_FIELDS])


async def test_an_agent_is_offered_no_compliance_action_and_cannot_forge_one(browser, every_site, pool, settings):
    """On the same open request compliance is offered its actions, an agent only its own; each
    other action's post, forged from the agent's page with its session and CSRF token, is refused
    inside the page, naming the role it needs, and changes nothing. Resuming a stopped request
    likewise (a plain form: the refusal is a page of its own, with its way back)."""
    site = every_site
    rid = await stored(pool, settings, unique_email("every.forge"), "erasure", due_in=15)
    officer = await signed_in(browser, site, pool, "compliance", f"/console/requests/{rid}")
    assert {"extend", "deny"} <= await offered(officer)
    await officer.context.close()

    page = await signed_in(browser, site, pool, "agent", f"/console/requests/{rid}")
    assert await offered(page) == {"cancel", "resend-verification"}
    before = (await audit_count(pool, rid),
              await pool.fetchrow("SELECT status, current_due_date FROM dsr_requests WHERE id = $1::uuid", rid))
    await page.route(POLLS, lambda route: route.abort())  # no poll swaps the refusal away meanwhile
    for action in NOT_AN_AGENTS:
        await forge(page, f"/console/requests/{rid}/{action}")
        await expect(page.locator("#live [role=alert]")).to_have_text(
            f"{action} needs the {STAFF_ACTIONS[action].role} role; you are agent")
        await assert_one_page(page)
        assert await offered(page) == {"cancel", "resend-verification"}
    await page.unroute(POLLS)
    after = (await audit_count(pool, rid),
             await pool.fetchrow("SELECT status, current_due_date FROM dsr_requests WHERE id = $1::uuid", rid))
    assert after == before

    halted = await stopped(pool, settings, unique_email("every.stopped"), due_in=6)
    await page.goto(f"{site}/console/requests/{halted}")
    await expect(page.locator("#workflow-ended")).to_contain_text("Compliance can resume it from this page")
    await expect(page.get_by_role("button", name="Resume the request")).to_have_count(0)
    await page.evaluate("""path => {
        const form = Object.assign(document.createElement('form'), {method: 'post', action: path});
        const fields = {csrf_token: document.querySelector('#notes input[name=csrf_token]').value,
                        reason: 'Forged by an agent'};
        for (const [name, value] of Object.entries(fields)) {
          form.append(Object.assign(document.createElement('input'), {type: 'hidden', name, value}));
        }
        document.body.append(form);
        form.submit();
    }""", f"/console/requests/{halted}/resume")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Forbidden")
    await expect(page.get_by_role("main")).to_contain_text(
        "resuming a request needs the compliance role; you are agent")
    assert await pool.fetchval("SELECT count(*) FROM step_troubles WHERE request_id = $1::uuid "
                               "AND resolved_at IS NULL", halted) == 1  # still stopped
    await page.get_by_role("link", name="Back to the console").click()
    await expect(page).to_have_url(f"{site}/console/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Queue")


async def test_compliance_and_an_admin_leave_a_refused_form_back_to_the_request_or_the_console(
        browser, every_site, pool, settings):
    """A form whose CSRF token went stale is refused on a page of its own; its ways back lead to the
    request the form was on (it led only to the queue) and to the queue (an agent follows that one
    from a page its role may not open: tests/test_browser_navigation.py)."""
    site = every_site
    for role in ("compliance", "admin"):
        rid = await stored(pool, settings, unique_email("every.stale.form"), "erasure", due_in=11)
        page = await signed_in(browser, site, pool, role, f"/console/requests/{rid}")
        await page.locator("#notes input[name=csrf_token]").evaluate("e => e.value = 'stale'")
        await page.get_by_label("New note").fill("Written in a page left open overnight")
        await page.get_by_role("button", name="Add note").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("CSRF check failed")
        await expect(page.get_by_role("main")).to_contain_text("reload the page and try again")
        assert await pool.fetchval("SELECT count(*) FROM request_notes WHERE request_id = $1::uuid", rid) == 0
        # Back to the page the form was on, to reload it as the refusal says (compliance), or to
        # the queue (admin): the refused page offers both.
        await expect(page.get_by_role("link", name="Back to the console")).to_have_count(1)
        if role == "compliance":
            await page.get_by_role("link", name="Back to the request").click()
            await expect(page).to_have_url(f"{site}/console/requests/{rid}")
            await expect(page.get_by_role("heading", level=1)).to_have_text("Erasure request")
        else:
            await page.get_by_role("link", name="Back to the console").click()
            await expect(page).to_have_url(f"{site}/console/")
            await expect(page.get_by_role("heading", level=1)).to_have_text("Queue")
        await page.context.close()


async def test_each_role_checks_addresses_and_compliance_and_an_admin_lift_one(browser, every_site, pool, settings):
    """The "Marketing suppressions" page from the header: each role pastes three addresses and
    presses Check (one on the list, since when and by which objection; one not; one no address).
    An agent is offered no Lift, and a lift it forges with its session is refused, the address
    still on the list. Compliance and an admin press Lift with the consent left empty (refused
    beside it), then with the consent, follow the objection's link and read the lift in the
    timeline."""
    site = every_site
    for role in ROLES:
        email, other = unique_email(f"every.suppressed.{role}"), unique_email("every.clean")
        rid = await suppressed_objection(pool, settings, email)
        page = await signed_in(browser, site, pool, role, "/console/")
        await page.get_by_role("navigation", name="Console").get_by_role("link", name="Marketing suppressions").click()
        await expect(page).to_have_url(f"{site}/console/suppressions")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Marketing suppressions")
        await page.get_by_label("E-mail addresses to check").fill(f"{email}\n{other}, not-an-address")
        await page.get_by_role("button", name="Check").click()
        await expect(page).to_have_url(f"{site}/console/suppressions/check")  # no address in it
        listed = page.locator("#suppressions tbody tr")
        await expect(listed).to_have_count(3)
        on_list = listed.filter(has_text=email)
        await expect(on_list).to_have_attribute("data-suppressed", "yes")
        await expect(on_list.locator("time")).to_have_count(1)
        await expect(on_list.get_by_role("link", name=short_reference(rid))).to_have_attribute(
            "href", f"/console/requests/{rid}")
        await expect(listed.filter(has_text=other)).to_contain_text("Not on the list")
        await expect(listed.filter(has_text="not-an-address")).to_contain_text("Not an e-mail address")

        if role == "agent":
            await expect(page.get_by_role("button", name="Lift")).to_have_count(0)
            await page.evaluate("""([email, consent]) => {
                const form = Object.assign(document.createElement('form'), {method: 'post',
                                                                             action: '/console/suppressions/lift'});
                const fields = {csrf_token: document.querySelector('input[name=csrf_token]').value,
                                addresses: email, email, ['consent:' + email]: consent};
                for (const [name, value] of Object.entries(fields)) {
                  form.append(Object.assign(document.createElement('input'), {type: 'hidden', name, value}));
                }
                document.body.append(form);
                form.submit();
            }""", [email, CONSENT])
            await expect(page.get_by_role("heading", level=1)).to_have_text("Forbidden")
            await expect(page.get_by_role("main")).to_contain_text(
                "taking an address off the suppression list needs the compliance role; you are agent")
            assert await pool.fetchval("SELECT count(*) FROM suppressions WHERE request_id = $1::uuid", rid) == 1
            await page.context.close()
            continue

        await on_list.get_by_role("button", name="Lift").click()
        consent = page.locator("#suppressions tbody tr").filter(has_text=email).get_by_role("textbox")
        await expect(page.get_by_role("alert")).to_contain_text(
            "Write how and when the subject consented to direct marketing again")
        await expect(consent).to_have_attribute("aria-invalid", "true")
        await expect(consent).to_be_focused()
        await expect(listed.filter(has_text=email)).to_have_attribute("data-suppressed", "yes")
        await consent.fill(CONSENT)
        await listed.filter(has_text=email).get_by_role("button", name="Lift").click()
        done = page.get_by_role("status")
        await expect(done).to_contain_text(f"Taken off the list: {email}.")
        await expect(listed).to_have_count(3)  # the same list, checked again
        await expect(listed.filter(has_text=email)).to_contain_text("Not on the list")
        await expect(page.get_by_role("button", name="Lift")).to_have_count(0)
        assert await pool.fetchval("SELECT count(*) FROM suppressions WHERE request_id = $1::uuid", rid) == 0
        await done.get_by_role("link", name=short_reference(rid)).click()
        await expect(page).to_have_url(f"{site}/console/requests/{rid}")
        await expect(page.locator(".timeline")).to_contain_text(
            f"Taken off the direct-marketing list: the subject consented again ({CONSENT}) by browser {role}")
        await page.context.close()
