"""The evidence pack of this session's new paths, read as a DPO answering a regulator reads it
(hCO): an appeal (a UK complaint) closed because another of the same refusal is decided instead;
a complaint's progress letter sent by hand by staff; a refused CCPA deletion under a policy that
sells or shares; and whom a response letter names as told (Art. 19) where a restriction or
correction acted on nothing in a system. The pack said "Closed unanswered (a refusal)" by
"workflow" of the closed appeal and "cancelled" of it in the refused request's pack; listed the
letter by hand as the workflow's own; named the remedies but not the opt-out question the letter
asks; and named every planned recipient, as if each had been told. Requests stored as intake and
the activities store them, no workflow run (the conftest's `http`: the app in-process)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from activities.appeal_claims import AppealClaimActivities
from activities.context import ActivityContext
from activities.mail import Mailer
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.domain.references import short_reference
from dsrflow.stores.requests_store import create_request
from dsrflow.stores.staff_tokens import issue_token
from policy.model import LoadedPolicy
from schemas.appeal_claims import AppealClaim
from schemas.requests import NewRequest, Regime
from tests.evidence_pages import LOCAL_TIME, readable, section
from tests.policy_once import policy_of
from tests.refused_requests import stored_refusal
from tests.support import answered_in_part, staff_headers, stored_request, unique_email
from tests.test_ccpa_sale_opt_out import LINK, selling


async def _letter(pool, rid: str, purpose: str, key: str | None = None) -> None:
    """A letter on record as sent (its copy is not what these tests read)."""
    await pool.execute("""INSERT INTO sent_letters (letter_key, request_id, purpose, recipient, subject, message_id,
                                                    body_text, body_html)
                          VALUES ($1, $2, $3, 'x@example.com', 'A letter', $4, 'text', 'html')""",
                       key or f"{rid}:{purpose}:1", uuid.UUID(rid), purpose, f"<{uuid.uuid4().hex}@dsrflow>")


async def _read(http, pool, rid: str) -> tuple[dict[str, Any], str]:
    """The pack as JSON, and its page's Decisions as a reader sees them."""
    headers = await staff_headers(pool)
    pack = (await http.get(f"/v1/requests/{rid}/evidence", headers=headers)).json()
    page = readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=headers)).text)
    return pack, page


@pytest.mark.parametrize(("regime", "kind", "decided"), [("vcdpa", "appeal", "decided"),
                                                         ("uk_gdpr", "complaint", "considered")])
async def test_an_appeal_closed_for_another_names_the_one_that_decides_it(http, pool, settings, regime, kind, decided):
    email = unique_email(f"closed-for-{kind}")
    refused = await stored_refusal(pool, settings, email, regime, type="erasure")
    taken, closed = [await stored_request(pool, settings, f"{kind}-{n}", type_="erasure", regime=regime,
                                          email=email, appeal_of=refused) for n in ("taken", "closed")]
    # The later one's claim, as its workflow asks it once confirmed: the first is being decided.
    ctx = ActivityContext(pool=pool, settings=settings, mailer=Mailer(settings), secret=load_secret_key(settings))
    lost = await AppealClaimActivities(ctx).claim_appeal_decision(AppealClaim(request_id=closed))
    assert lost is not None and lost.decided_as == taken
    await _letter(pool, closed, "cancellation")
    of = "about" if kind == "complaint" else "of"

    pack, page = await _read(http, pool, closed)
    refusal = pack["decisions"]["refusal"]
    assert refusal["decided_as"] == {"id": taken, "reference": short_reference(taken), "decided": False,
                                     "status": "in_progress", "ended_undecided": None}, refusal
    decisions = section(page, "Decisions", "Plan")
    assert re.search(f"Closed without a separate decision {LOCAL_TIME}, by the workflow on its own as this {kind} was "
                     f"to be taken up: the subject's {kind} {short_reference(taken)} \\( {taken} \\) {of} the same "
                     f"refusal was already being {decided}, and its (decision|outcome) answers this one \\(one "
                     f"decision per refusal\\); that {kind} is now in progress. No system was searched or changed. "
                     f"The letter saying so, naming that {kind}, with the remedies \\(", decisions), decisions
    assert "Closed unanswered" not in decisions and "by workflow" not in decisions

    pack, page = await _read(http, pool, taken)
    assert [a["id"] for a in pack["decisions"]["decides_also"]] == [closed]
    assert f"Also answers the subject's {kind} {short_reference(closed)} ( {closed} ) {of} the same refusal" in \
        section(page, "Decisions", "Plan")

    pack, page = await _read(http, pool, refused)
    assert {a["id"]: a["decided_as"] for a in pack["decisions"]["appeals"]} == {
        taken: None, closed: {"id": taken, "reference": short_reference(taken)}}
    assert (f"{'Complained about' if kind == 'complaint' else 'Appealed'} by request {short_reference(closed)} "
            f"( {closed} ), received ") in section(page, "Decisions", "Plan")
    assert (f"closed without a separate decision: the subject's {kind} {short_reference(taken)} ( {taken} ) {of} "
            "this refusal answers it") in section(page, "Decisions", "Plan")


async def test_a_progress_letter_staff_sent_by_hand_says_who_sent_it(http, pool, settings):
    refused = await stored_refusal(pool, settings, email := unique_email("by-hand"), "uk_gdpr", type="erasure")
    complaint = await stored_request(pool, settings, "by-hand", type_="erasure", regime="uk_gdpr", email=email,
                                     appeal_of=refused)
    row, _ = await issue_token(pool, "compliance", "Jane Peeters")
    actor = f"compliance:{str(row['id'])[:8]}"
    async with pool.acquire() as conn:  # as workflows/complaint_progress.py records the press
        await append_event(conn, event_key=f"{complaint}:progress-by-hand:1", request_id=complaint,
                           event_type="complaint.progress_told", actor=actor,
                           data={"note": "We asked the billing team to check again.", "letter": "staff-1"})
    await _letter(pool, complaint, "complaint_progress", f"{complaint}:complaint_progress:1")
    await _letter(pool, complaint, "complaint_progress", f"{complaint}:complaint_progress:staff-1")

    pack, page = await _read(http, pool, complaint)

    by_hand = {letter["letter_key"].rsplit(":", 1)[1]: letter["by_hand"] for letter in pack["letters"]}
    assert by_hand["1"] is None, by_hand
    assert (by_hand["staff-1"]["by"], by_hand["staff-1"]["note"]) == (actor, "We asked the billing team to check again.")
    letters = section(page, "Letters sent (2)", "Internal notes (0)")
    assert re.search(f"to x@example.com, by hand: Jane Peeters \\(compliance\\) sent it {LOCAL_TIME}, with the note it "
                     "quotes · Message-ID", letters), letters
    assert letters.count("by hand") == 1, letters
    # Under the deadlines, how often the policy owes one, and each sent (DPA 2018 s. 164A(5)(b)).
    kept = pack["deadlines"]["kept_informed"]
    assert kept["every_days"] == 14 and [sent["by_hand_by"] for sent in kept["letters"]] == [None, actor], kept
    assert re.search("Kept informed a progress letter 14 days after receipt and 14 days after each one, while the "
                     "complaint is undecided \\(DPA 2018 s. 164A\\(5\\)\\(b\\); the interval is our policy's\\): "
                     f"sent {LOCAL_TIME}; sent {LOCAL_TIME} by hand by Jane Peeters \\(compliance\\) Due ",
                     section(page, "Deadlines", "Decisions")), section(page, "Deadlines", "Decisions")


async def _ccpa_refused_in_part(pool, settings, loaded: LoadedPolicy, type_: str) -> str:
    """A CCPA request under `loaded`, its response on record as refusing in part: its id."""
    row, _ = await create_request(pool, NewRequest(type=type_, regime="ccpa", identity_attested=True,
                                                   subject={"email": unique_email("sale-opt-out")}),
                                  loaded_policy=loaded, secret=load_secret_key(settings), actor="test",
                                  idempotency_key=None)
    await answered_in_part(pool, str(row["id"]))
    return str(row["id"])


async def test_a_refused_ccpa_deletion_names_the_opt_out_question_its_letter_asks(http, pool, settings):
    deletion = await _ccpa_refused_in_part(pool, settings, selling(), "erasure")
    others = [await _ccpa_refused_in_part(pool, settings, selling(), "access"),
              await _ccpa_refused_in_part(pool, settings, policy_of(settings), "erasure")]

    pack, page = await _read(http, pool, deletion)

    assert pack["decisions"]["remedies"]["sale_opt_out"] == {
        "heading": selling().policy.remedies[Regime.ccpa].sale_opt_out.heading, "link": LINK}
    assert ("The response letter, with the reasons and the remedies (the question whether to opt out of the sale or "
            f"sharing of personal information ({LINK}; Cal. Code Regs. tit. 11 § 7022(f)(4)), complaint to the "
            "California Privacy Protection Agency, enforcement and the courts)") in section(page, "Decisions", "Plan")
    # Not for an access request, nor where the policy sells and shares nothing (the shipped one).
    for rid in others:
        pack, page = await _read(http, pool, rid)
        assert pack["decisions"]["remedies"]["sale_opt_out"] is None and "opt out" not in page


async def _acted_in_crm_only(pool, settings, type_: str, details: dict[str, Any], billing: dict[str, Any]) -> str:
    """A correction or restriction planned in three systems, each an Art. 19 recipient: done in the
    CRM, which changed its contact, and in billing, whose `billing` datasets it acted on nothing
    in; analytics held no data of the subject. The response letter on record as sent. Its id."""
    rid = await stored_request(pool, settings, f"told-{type_}", type_=type_, **details)
    action = {"restriction": "restrict", "rectification": "rectify"}[type_]
    tasks = [{"system": "crm", "action": action, "connector": "sql", "label": "CRM", "recipient": "communication_crm",
              "scope": None},
             {"system": "billing", "action": action, "connector": "http", "label": "Billing",
              "recipient": "financial_services", "scope": None},
             {"system": "analytics", "action": action, "connector": "sql", "label": "Analytics",
              "recipient": "google_analytics", "scope": None}]
    await pool.execute(
        """INSERT INTO request_plans (request_id, plan)
           SELECT id, jsonb_build_object('request_id', id, 'policy_version', policy_version, 'request_type', $3::text,
                                         'tasks', $2::jsonb) FROM dsr_requests WHERE id = $1""",
        uuid.UUID(rid), tasks, type_)
    await pool.executemany(
        """INSERT INTO system_tasks (request_id, system, action, status, found, changed, datasets)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        [(uuid.UUID(rid), "crm", action, "done", 1, 1, {"contacts": {"found": 1, "changed": 1}}),
         (uuid.UUID(rid), "billing", action, "done", sum(d.get("found", 0) for d in billing.values()), 0, billing),
         (uuid.UUID(rid), "analytics", action, "not_found", 0, 0, {"users": {"found": 0}})])
    await _letter(pool, rid, "response")
    return rid


# An http lookup read the customer and its invoice; no step set either: "nothing to restrict".
NOTHING_TO_RESTRICT = {"customers": {"found": 1}, "invoices": {"found": 1}}


@pytest.mark.parametrize(("type_", "details", "billing", "what"), [
    ("restriction", {"restriction_grounds": ["accuracy_contested"]}, NOTHING_TO_RESTRICT, "restricted"),
    # Every record an earlier erasure kept, left as it was.
    ("rectification", {"corrections": {"city": "Gent"}}, {"customers": {"found": 0, "changed": 0, "left": 1}},
     "corrected"),
])
async def test_the_recipients_a_response_names_as_told_leave_out_a_system_that_did_nothing(
        http, pool, settings, type_, details, billing, what):
    rid = await _acted_in_crm_only(pool, settings, type_, details, billing)

    pack, page = await _read(http, pool, rid)

    action = pack["results"][0]["action"]
    assert pack["deadlines"]["kept_informed"] is None  # a UK complaint's only
    assert pack["recipients_told"] == {
        "told": [{"system": "crm", "action": action, "recipient": "communication_crm"}],
        "not_told": [{"system": "analytics", "action": action, "recipient": "google_analytics", "why": "held_nothing"},
                     {"system": "billing", "action": action, "recipient": "financial_services",
                      "why": "acted_on_nothing"}]}, pack["recipients_told"]
    told = page.split("Recipients the response letter names as told", 1)[1].split(" Holds and kept records ", 1)[0]
    # The session's policy names no recipient: the page names them by their kind.
    assert told.startswith(" (Art. 19 GDPR): communication crm (CRM). Not named as told: google analytics "
                           "(Analytics): it held no data of the subject; financial services (Billing): nothing was "
                           f"{what} there."), told


async def test_a_restriction_is_not_said_in_force_where_it_restricted_nothing(http, pool, settings):
    """The restriction's record names every system whose task was done (workflows/restriction_lifecycle.py),
    billing too, where the letter says there was nothing to restrict."""
    rid = await _acted_in_crm_only(pool, settings, "restriction", {"restriction_grounds": ["accuracy_contested"]},
                                   NOTHING_TO_RESTRICT)
    await pool.execute("""INSERT INTO restrictions (request_id, subject_hash, grounds, systems, keeps_from_erasure)
                          VALUES ($1, 'h', '{accuracy_contested}', '{billing,crm}', false)""", uuid.UUID(rid))

    pack, page = await _read(http, pool, rid)

    assert pack["decisions"]["restriction"]["restricted_nothing_in"] == ["billing"]
    decisions = section(page, "Decisions", "Plan")
    assert ", in the system “CRM” (the systems that hold the subject's data); Billing held the subject's records and restricted " \
           "none of them (nothing to restrict, as the response letter says: see Results)." in decisions, decisions
