"""Staff record that they carried out by hand a held lift the worker's sweep handed them
(dsrflow/stores/lifts_by_hand.py, hEH): over REST (`record-lift-by-hand`, `lifts-by-hand`) and the
console's form, the request's timeline and evidence pack say it, and a newer restriction of the
subject no longer tells staff not to lift it (activities/lift_superseded.py). Before, nothing
could record it: the trail never said the subject's data there was un-restricted, and the lift
counted as outstanding for 90 days.

The lift's request is stored as intake stores it and closed, with the trail the sweep leaves when it
hands a held lift to staff (activities/held_lifts.py: `restriction.lift_released`, needs_attention),
written as it writes it; the sweep's own path runs in tests/test_held_lift_release.py. In process.
"""

from __future__ import annotations

import html
import logging
import uuid

from activities.held_lifts import released_key
from activities.lift_superseded import _UNTOLD, superseded_key, tell_lift_superseded
from dsrflow.domain.audit import append_event
from dsrflow.domain.references import short_reference
from dsrflow.stores.lifts_outstanding_store import outstanding_lifts
from tests.evidence_pages import readable
from tests.support import console_sign_in, staff_headers, stored_request, unique_email
from workers.dsr_worker import activity_context

SYSTEM, LABEL = "email_marketing", "E-mail marketing (newsletters)"
NOTE = "Phoned their DPO on 7 December <2026>; they confirmed the contact's restriction flag is off."
SUPERSEDED = ("SELECT count(*) FROM audit_events WHERE request_id = $1::uuid "
              "AND event_type = 'restriction.lift_superseded'")


async def handed_to_staff(pool, settings, email: str) -> str:
    """A restriction, lifted and closed, whose lift at the e-mail marketing processor another
    restriction held back, then the sweep handed to staff once that one ended without coming
    into force there."""
    lift = await stored_request(pool, settings, "byhand", type_="restriction", email=email,
                                restriction_grounds=["needed_for_legal_claims"])
    holder = await stored_request(pool, settings, "byhand-holder", type_="restriction", email=email,
                                  restriction_grounds=["accuracy_contested"])
    tasks = [{"system": SYSTEM, "action": "restrict", "connector": "opendsr", "label": LABEL, "recipient": None,
              "scope": None}]
    await pool.execute(
        """INSERT INTO request_plans (request_id, plan)
           SELECT id, jsonb_build_object('request_id', id, 'policy_version', policy_version, 'request_type', request_type,
                                         'tasks', $2::jsonb) FROM dsr_requests WHERE id = $1""", uuid.UUID(lift), tasks)
    await pool.execute("""INSERT INTO restrictions (request_id, subject_hash, grounds, systems, keeps_from_erasure,
                                                    lift_requested_at, lift_reason, lifted_at)
                          VALUES ($1::uuid, 'h', '{needed_for_legal_claims}', $2, true, now(), 'claim settled', now())""",
                       lift, [SYSTEM])
    await pool.execute("UPDATE dsr_requests SET status = 'completed', closed_at = now() WHERE id = $1::uuid", lift)
    await pool.execute("UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1::uuid", holder)
    async with pool.acquire() as conn:
        await append_event(conn, event_key=released_key(lift, SYSTEM), event_type="restriction.lift_released",
                           request_id=lift, actor="sweep", data={"system": SYSTEM, "by": holder,
                                                                 "status": "needs_attention"})
    return lift


async def test_compliance_records_a_lift_by_hand_once_and_the_timeline_and_pack_say_so(http, pool, settings, caplog):
    lift = await handed_to_staff(pool, settings, unique_email("byhand"))
    compliance, agent = await staff_headers(pool, "compliance"), await staff_headers(pool, "agent")
    url = f"/v1/requests/{lift}/record-lift-by-hand"

    listed = await http.get(f"/v1/requests/{lift}/lifts-by-hand", headers=agent)
    assert listed.status_code == 200 and [x["system"] for x in listed.json()] == [SYSTEM], listed.text
    pack = (await http.get(f"/v1/requests/{lift}/evidence", headers=compliance)).json()
    assert [o["system"] for o in pack["decisions"]["restriction"]["by_hand_owed"]] == [SYSTEM], pack
    page = readable((await http.get(f"/v1/requests/{lift}/evidence.html", headers=compliance)).text)
    assert f"Still restricted in the system “{LABEL}”: its lift, held back by another restriction" in page, page

    assert (await http.post(url, json={"system": SYSTEM, "note": NOTE}, headers=agent)).status_code == 403
    for body, field in (({"system": "E-mail marketing", "note": NOTE}, "system"), ({"system": SYSTEM, "note": "  "}, "note"),
                        ({"system": SYSTEM, "note": "x" * 4001}, "note"), ({"system": SYSTEM}, "note")):
        refused = await http.post(url, json=body, headers=compliance)
        assert refused.status_code == 422 and [e["field"] for e in refused.json()["errors"]] == [field], refused.text
    elsewhere = await http.post(url, json={"system": "crm", "note": NOTE}, headers=compliance)
    assert elsewhere.status_code == 409 and "No lift by hand is outstanding at crm" in elsewhere.json()["detail"]

    with caplog.at_level(logging.DEBUG):
        recorded = await http.post(url, json={"system": SYSTEM, "note": NOTE}, headers=compliance)
    assert recorded.status_code == 201, recorded.text
    assert recorded.json() == {"request_id": lift, "event_type": "restriction.lifted_by_hand", "system": SYSTEM,
                               "note": NOTE}
    assert "Phoned their DPO" not in caplog.text  # staff text: nothing of it in the logs
    again = await http.post(url, json={"system": SYSTEM, "note": "Again."}, headers=compliance)
    assert again.status_code == 409 and f"lift at {SYSTEM} is already recorded" in again.json()["detail"], again.text
    assert (await http.get(f"/v1/requests/{lift}/lifts-by-hand", headers=agent)).json() == []

    pack = (await http.get(f"/v1/requests/{lift}/evidence", headers=compliance)).json()
    restriction = pack["decisions"]["restriction"]
    assert restriction["by_hand_owed"] == [] and [(d["system"], d["note"]) for d in restriction["lifted_by_hand"]] \
        == [(SYSTEM, NOTE)], restriction
    page = readable((await http.get(f"/v1/requests/{lift}/evidence.html", headers=compliance)).text)
    assert f"Its lift in the system “{LABEL}”, held back by another restriction of the subject that never came into " \
           "force there, was carried out by hand: recorded " in page and f"“{NOTE}”" in page, page
    assert "Still restricted" not in page
    await console_sign_in(http, pool, "compliance")
    console = " ".join(html.unescape((await http.get(f"/console/requests/{lift}")).text).split())
    assert (f"Lift carried out by hand by staff at a system the sweep could not lift ({LABEL}: {NOTE})"
            in console), console
    assert 'id="lifts-by-hand"' not in console  # nothing outstanding: no panel


async def test_a_restriction_after_the_record_tells_nobody_not_to_lift_it(http, pool, settings):
    """Before the record a newer restriction of the subject finds the lift outstanding (and would
    alert staff not to lift it); after it, none, and the start sweep's part has nothing to tell."""
    email = unique_email("byhand-newer")
    lift = await handed_to_staff(pool, settings, email)
    newer = await stored_request(pool, settings, "byhand-newer", type_="restriction", email=email,
                                 restriction_grounds=["accuracy_contested"])
    assert [(r["lift"], r["told"]) for r in await outstanding_lifts(pool, newer, SYSTEM)] == [(lift, "staff")]
    assert (lift, SYSTEM) in {(r["lift"], r["system"]) for r in await pool.fetch(_UNTOLD)}

    # The console's form, as compliance presses it (its test in a browser: tests/test_browser_lift_by_hand.py).
    csrf = await console_sign_in(http, pool, "compliance")
    page = (await http.get(f"/console/requests/{lift}")).text
    assert f'id="record-lift-{SYSTEM}"' in page
    pressed = await http.post(f"/console/requests/{lift}/record-lift-by-hand",
                              data={"csrf_token": csrf, "system": SYSTEM, "note": NOTE})
    assert pressed.status_code == 303 and "#lifts-by-hand" in pressed.headers["location"], pressed.text

    assert await outstanding_lifts(pool, newer, SYSTEM) == []
    assert (lift, SYSTEM) not in {(r["lift"], r["system"]) for r in await pool.fetch(_UNTOLD)}
    assert await tell_lift_superseded(activity_context(settings, pool), newer, SYSTEM) is False
    assert await pool.fetchval(SUPERSEDED, newer) == 0
    assert await pool.fetch("SELECT 1 FROM sent_letters WHERE request_id = $1::uuid", newer) == []


async def test_a_lift_a_newer_restriction_superseded_is_shown_so_and_recorded_as_after_it(http, pool, settings):
    """A newer restriction of the subject told staff not to lift the system (activities/lift_superseded.py,
    its record written as it writes it): the panel says so and links to it; recording the lift anyway
    (staff lifted before they were told) says it was after that restriction, and tells staff to
    restrict the system again: REST's answer, the console's notice, the timeline and the pack."""
    email = unique_email("byhand-superseded")
    lift = await handed_to_staff(pool, settings, email)
    newer = await stored_request(pool, settings, "byhand-superseded", type_="restriction", email=email,
                                 restriction_grounds=["accuracy_contested"])
    since = "2026-12-07T09:30:00+00:00"
    async with pool.acquire() as conn:
        await append_event(conn, event_key=superseded_key(newer, SYSTEM), event_type="restriction.lift_superseded",
                           request_id=newer, actor="workflow", data={"system": SYSTEM, "since": since, "lifts": [lift],
                                                                     "staff": [lift], "emailed": []})
    compliance = await staff_headers(pool, "compliance")
    listed = (await http.get(f"/v1/requests/{lift}/lifts-by-hand", headers=compliance)).json()
    assert [(x["system"], x["superseded_by"], x["restricted_since"]) for x in listed] == [(SYSTEM, newer, since)]
    ref = short_reference(newer)

    csrf = await console_sign_in(http, pool, "compliance")
    page = " ".join(html.unescape((await http.get(f"/console/requests/{lift}")).text).split())
    assert f'Do not lift it: request <a href="/console/requests/{newer}" class="mono">{ref}</a> of the subject ' \
           "restricts it there since 7 December 2026" in page, page
    assert f'id="record-lift-{SYSTEM}"' in page  # still recordable: staff may have lifted before they were told
    pressed = await http.post(f"/console/requests/{lift}/record-lift-by-hand",
                              data={"csrf_token": csrf, "system": SYSTEM, "note": NOTE}, follow_redirects=True)
    shown = " ".join(html.unescape(pressed.text).split())
    assert f"<strong>Restrict the subject's data in “{LABEL}” again:</strong> request <a href=\"/console/requests/" \
           f'{newer}" class="mono">{ref}</a> restricts it there since before this lift, which undid it.' in shown, shown
    # The note (ending with a full stop) quoted: it read "...is off.; after restriction".
    assert f"({LABEL}: “{NOTE}”; after restriction {ref} restricted it there since 7 December 2026" in shown
    assert "staff to restrict it there again)" in shown

    pack = (await http.get(f"/v1/requests/{lift}/evidence", headers=compliance)).json()
    assert [d["after_restriction"] for d in pack["decisions"]["restriction"]["lifted_by_hand"]] == [newer]


async def test_rest_tells_staff_to_restrict_again_a_superseded_lift_they_record(http, pool, settings):
    email = unique_email("byhand-superseded-rest")
    lift = await handed_to_staff(pool, settings, email)
    newer = await stored_request(pool, settings, "byhand-superseded-rest", type_="restriction", email=email,
                                 restriction_grounds=["accuracy_contested"])
    async with pool.acquire() as conn:
        await append_event(conn, event_key=superseded_key(newer, SYSTEM), event_type="restriction.lift_superseded",
                           request_id=newer, actor="workflow", data={"system": SYSTEM, "since": "2026-12-07T09:30:00Z",
                                                                     "lifts": [lift], "staff": [lift], "emailed": []})
    recorded = await http.post(f"/v1/requests/{lift}/record-lift-by-hand", json={"system": SYSTEM, "note": NOTE},
                               headers=await staff_headers(pool, "compliance"))
    assert recorded.status_code == 201, recorded.text
    body = recorded.json()
    assert body["after_restriction"] == newer and body["restricted_since"] == "2026-12-07T09:30:00Z"
    assert body["restrict_again"] == (f"Restrict the subject's data at {SYSTEM} again: request "
                                      f"{short_reference(newer)} restricts it there since before this lift was "
                                      "carried out, and this lift undid it."), body
