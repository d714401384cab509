"""Red team, a member of staff with a page gone stale, on the deferred-erasure panel: "Ask again"
and "Record as erased" answer the erasure as the page showed it (its attempt and state), or nothing.

Both named only the system. A "Record as erased" typed while a colleague asked the processor
again settled the new job, asked since (the note spoke of the first one's failure); an "Ask again"
pressed twice (or replayed) after the retry had failed again asked the processor a third time,
for a failure nobody read. Now the console's forms send the attempt and state shown, REST takes
them, and the store compares them under the rows' lock (dsrflow/stores/deferred_store.py
`Shown`): stale, 409 in words (the REST API) or the panel's refusal (the console), and nothing is
recorded. docs/security.md, "Staff against their own console". The requests have no workflow,
as in tests/test_redteam_reads.py, whose stored erasure (its CRM record failed once its hold ended)
these start from.
"""

from __future__ import annotations

import httpx

from activities.context import ActivityContext
from activities.deferred_processors import record_failure
from activities.mail import Mailer
from dsrflow.crypto.keys import load_secret_key
from schemas.staff_answers import STALE_ANSWER
from tests.support import console_sign_in, staff_headers
from tests.test_redteam_reads import _deferred_erasure, client  # noqa: F401 (a fixture)
from tests.test_redteam_stale_step_answers import form_fields

NOTE = "Their DPO confirmed by phone that the contact is gone."
SECOND = "the CRM refused: contact locked by an open ticket"


async def _panel_form(console: httpx.AsyncClient, rid: str, action: str) -> dict[str, str]:
    """The hidden fields of the panel's CRM form for `action` (retry, settle) as the page shows now."""
    return form_fields((await console.get(f"/console/requests/{rid}")).text, f"deferred/crm/{action}")


async def _panel_says(console: httpx.AsyncClient, answer: httpx.Response) -> str:
    """The page the console's answer leads back to (a refusal is shown in the panel)."""
    assert answer.status_code == 303, answer.text[:2000]
    return (await console.get(answer.headers["location"])).text


async def _events(pool, rid: str, event_type: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = $2",
                               rid, event_type)


async def _crm(pool, rid: str):
    return await pool.fetchrow("SELECT attempt, failed_at, submitted_at, done_at, settled_by FROM deferred_erasures "
                               "WHERE request_id = $1 AND system = 'crm'", rid)


async def test_a_settlement_typed_before_a_colleague_asked_again_settles_nothing(client, pool, settings):  # noqa: F811
    """Officer A's panel shows the CRM's erasure failed (attempt 1) and A types how it was done;
    officer B asks the CRM again, and the sweep asks it (attempt 2, asked). A's "Record as
    erased", sent now, is refused, over the console as over REST: nothing settled, no note, no
    event. Sent for the attempt that stands, it is taken."""
    rid = await _deferred_erasure(pool, settings, settle=False)
    compliance = await staff_headers(pool, "compliance")
    await console_sign_in(client, pool, "compliance")
    stale = {**await _panel_form(client, rid, "settle"), "note": NOTE}
    assert (stale["attempt"], stale["state"]) == ("1", "failed")

    retried = await client.post(f"/v1/requests/{rid}/deferred-erasures/crm/retry", headers=compliance,
                                json={"attempt": 1, "state": "failed"})
    assert retried.status_code == 202, retried.text
    await pool.execute("UPDATE deferred_erasures SET submitted_at = now(), external_id = 'job-2' "
                       "WHERE request_id = $1", rid)  # as the retry's sweep leaves it once it asked

    page = await _panel_says(client, await client.post(f"/console/requests/{rid}/deferred/crm/settle", data=stale))
    assert "(attempt 1, failed) has been answered or has changed since, and stands now at attempt 2, asked" in page
    assert STALE_ANSWER in page
    by_rest = await client.post(f"/v1/requests/{rid}/deferred-erasures/crm/settle", headers=compliance,
                                json={"note": NOTE, "attempt": 1, "state": "failed"})
    assert by_rest.status_code == 409 and STALE_ANSWER in by_rest.json()["detail"], by_rest.text
    row = await _crm(pool, rid)
    assert (row["attempt"], row["done_at"], row["settled_by"]) == (2, None, None)
    assert await _events(pool, rid, "erasure.deferred_settled") == 0
    assert await pool.fetchval("SELECT count(*) FROM request_notes WHERE request_id = $1", rid) == 1  # the agent's

    fresh = {**await _panel_form(client, rid, "settle"), "note": NOTE}
    assert "Recorded as erased" in await _panel_says(
        client, await client.post(f"/console/requests/{rid}/deferred/crm/settle", data=fresh))
    assert await _events(pool, rid, "erasure.deferred_settled") == 1


async def test_an_ask_again_pressed_again_after_it_failed_again_asks_nothing(client, pool, settings):  # noqa: F811
    """"Ask again" pressed (attempt 2), the CRM fails again; the same form pressed again (a double
    press, a replay) is refused, as a REST retry naming attempt 1 is: no attempt 3, one retry on
    record. A form that says nothing of what it showed (a page from before) is refused too."""
    rid = await _deferred_erasure(pool, settings, settle=False)
    compliance = await staff_headers(pool, "compliance")
    csrf = await console_sign_in(client, pool, "compliance")
    form = await _panel_form(client, rid, "retry")
    pressed = await client.post(f"/console/requests/{rid}/deferred/crm/retry", data=form)
    assert pressed.status_code == 303 and "deferred_done=" in pressed.headers["location"], pressed.text[:2000]
    ctx = ActivityContext(pool=pool, settings=settings, mailer=Mailer(settings), secret=load_secret_key(settings))
    rows = await pool.fetch("SELECT id, attempt FROM deferred_erasures WHERE request_id = $1", rid)
    await record_failure(ctx, rid, "crm", rows, SECOND, asked=True)  # the retry's sweep: failed again

    page = await _panel_says(client, await client.post(f"/console/requests/{rid}/deferred/crm/retry", data=form))
    assert f"stands now at attempt 2, failed ({SECOND})" in page and STALE_ANSWER in page
    by_rest = await client.post(f"/v1/requests/{rid}/deferred-erasures/crm/retry", headers=compliance,
                                json={"attempt": 1, "state": "failed"})
    assert by_rest.status_code == 409, by_rest.text
    unsaid = await _panel_says(client, await client.post(f"/console/requests/{rid}/deferred/crm/retry",
                                                         data={"csrf_token": csrf}))
    assert "this form does not say which attempt of" in unsaid
    row = await _crm(pool, rid)
    assert (row["attempt"], row["failed_at"] is not None) == (2, True)
    assert await _events(pool, rid, "erasure.deferred_retried") == 1
