"""An erasure a legal-claims hold cut short (a deletion service's quota held it back, and the hold
came meanwhile: tests/test_saas_ga4.py runs it on the stack): the response letter says part of the
data was asked for deletion and accepted, N identifiers, and the rest, under M identifiers, is kept
under the hold (activities/letter_outcome.py `cut_short`). The evidence pack and the console's
request page said "all the data it holds, kept whole under a hold" and "Everything in ... kept":
a DPO reading them beside the letter read two stories. Now they say what the letter says.

The request is stored as the workflow leaves it (no workflow runs), its plan naming the deletion
service by its label: 50 of its 61 identifiers went before the hold.
"""

from __future__ import annotations

import html
import re
import uuid

from dsrflow.i18n import long_date
from tests.evidence_pages import readable, section
from tests.support import (
    answered_in_part,
    console_sign_in,
    kept_whole_under,
    place_claims_hold,
    staff_headers,
    stored_request,
    unique_email,
)

SYSTEM = "Google Analytics 4"
REST = "under 11 of the 61 identifiers by which it knows the subject"
BEFORE = "(it had accepted the deletion of the data under the other 50 before the hold)"


async def _cut_short_erasure(pool, settings, email: str | None = None) -> tuple[str, dict]:
    email = email or unique_email("cut-short")
    rid = await stored_request(pool, settings, "cut-short", type_="erasure", email=email)
    hold = await place_claims_hold(pool, settings, email, ["analytics"])
    await pool.execute(
        """INSERT INTO request_plans (request_id, plan)
           SELECT id, jsonb_build_object('request_id', id, 'policy_version', policy_version, 'request_type', 'erasure',
                                         'tasks', $2::jsonb) FROM dsr_requests WHERE id = $1""",
        uuid.UUID(rid), [{"system": "analytics", "action": "erase", "connector": "http", "label": SYSTEM,
                          "recipient": None, "scope": None}])
    kept = await kept_whole_under(pool, settings, rid, email, "analytics", hold)
    # As activities/fanout.py records it: found every identifier, changed those the service accepted.
    await pool.execute(
        """INSERT INTO system_tasks (request_id, system, action, status, found, changed, kept, datasets, message,
                                     kept_records)
           VALUES ($1, 'analytics', 'erase', 'done', 61, 50, 1, $2, $3, $4)""",
        uuid.UUID(rid), {"identifiers": {"found": 61, "submitted": 50}},
        "kept under a legal-claims hold placed while the erasure waited to carry on: what it had done before "
        f"stands (50 of 61 identifiers accepted by {SYSTEM} before it; the 11 left not sent)", [kept])
    await answered_in_part(pool, rid)
    return rid, hold


async def test_the_pack_says_what_went_before_the_hold_and_what_the_hold_keeps(http, pool, settings):
    rid, hold = await _cut_short_erasure(pool, settings)
    headers = await staff_headers(pool)

    pack = (await http.get(f"/v1/requests/{rid}/evidence", headers=headers)).json()
    text = readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=headers)).text)

    counts = {"identifiers": 61, "accepted": 50, "kept": 11}
    part = pack["decisions"]["refused_in_part"]
    assert (part["kept_whole"], part["cut_short"]) == ([], [{"system": "analytics", **counts}]), part
    assert pack["holds"]["kept_records"][0]["cut_short"] == counts
    assert pack["holds"]["deferred_erasures"][0]["cut_short"] == counts
    decisions = section(text, "Decisions", "Plan")
    assert (f"the request was carried out except for: the data {SYSTEM} holds {REST} {BEFORE}, kept under a hold "
            "set out in Holds and kept records.") in decisions, decisions
    assert "kept whole" not in decisions and "all the data" not in decisions
    results = section(text, "Results per system", "Holds and kept records")
    assert f"{SYSTEM} erase done 61 50 the rest 1 " in results, results
    kept = section(text, "Holds and kept records", "Letters sent")
    review = long_date(hold["review_date"])
    assert (f"{SYSTEM} the data it holds {REST} {BEFORE} the rest legal-claims hold placed") in kept, kept
    assert f"the hold's release (review by {review})" in kept, kept
    assert (f"Scheduled erasures: the data {SYSTEM} holds {REST} {BEFORE}, kept under the legal-claims hold "
            "placed") in kept, kept
    assert "all the data" not in kept


async def test_the_console_says_what_went_before_the_hold_and_what_the_hold_keeps(http, pool, settings):
    rid, hold = await _cut_short_erasure(pool, settings)
    await console_sign_in(http, pool, "compliance")

    page = html.unescape((await http.get(f"/console/requests/{rid}")).text)

    held = " ".join(re.sub(r"<[^>]+>", " ", page.split("<h2>Holds</h2>")[1].split("</div>")[0]).split())
    assert (f"The data {SYSTEM} holds {REST} kept under a legal-claims hold: Art. 17(3)(e) GDPR: establishment, "
            "exercise or defence of legal claims, "
            f"until the hold's release (to be reviewed by "
            f"{long_date(hold['review_date'])}). Before the hold, {SYSTEM} had accepted the deletion of the data under "
            "the other 50.") in held, held
    assert "Everything in" not in held
    # The Systems table and the deferred-erasure panel say the same: they said Kept "1" and "1 still held".
    assert f"{SYSTEM} erase done 61 50 11 of 61 identifiers " in _text(page, '<table id="tasks">', "</table>"), page
    deferred = _text(page, '<section id="deferred"', "</table>")
    assert f"{SYSTEM} the data under 11 of 61 identifiers, still held " in deferred, deferred
    assert "1 still held" not in deferred


def _text(page: str, start: str, end: str) -> str:
    """The words of the page from `start` to the next `end`, tags dropped."""
    return " ".join(re.sub(r"<[^>]+>", " ", start + page.split(start)[1].split(end)[0]).split())


async def test_the_rest_listing_of_deferred_erasures_says_what_the_hold_keeps(http, pool, settings):
    email = unique_email("cut-short")
    rid, hold = await _cut_short_erasure(pool, settings, email)
    # Beside it, a system the same hold kept whole before anything was erased there: no counts.
    kept = await kept_whole_under(pool, settings, rid, email, "crm", hold)
    await pool.execute(
        """INSERT INTO system_tasks (request_id, system, action, status, found, changed, kept, datasets, message,
                                     kept_records)
           VALUES ($1, 'crm', 'erase', 'done', 0, 0, 1, '{}', 'kept under a legal-claims hold', $2)""",
        uuid.UUID(rid), [kept])

    listed = await http.get(f"/v1/requests/{rid}/deferred-erasures", headers=await staff_headers(pool))

    assert listed.status_code == 200, listed.text
    # It said `states: {"held": 1}` alone, as if the hold kept all the data Google Analytics 4 holds.
    assert [(d["system"], d["states"], d["cut_short"]) for d in listed.json()] == [
        ("analytics", {"held": 1}, {"identifiers": 61, "accepted": 50, "kept": 11}),
        ("crm", {"held": 1}, None)]
