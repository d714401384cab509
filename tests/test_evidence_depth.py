"""The evidence pack read with fresh eyes, as a DPO shows a finished request to an authority, path by
path: what it says in one path only that the request's own records, or its letters, contradict.

- A UK GDPR request's deadline rule said the month ran "from the day [identity verification] was
  completed", but the workflow computed every due date on receipt (activities/lifecycle.py
  `prepare_request`): the due date of a request verified later matched no rule the pack stated.
  Now the workflow counts it again from that day (workflows/verification_clock.py) and the pack
  says when the month started, and why (tests/test_uk_clock.py for a verified request).
- What an erasure kept was given the basis the policy words it in, citing the GDPR, under every law:
  a UK GDPR or VCDPA erasure's pack said "Art. 17(3)(b) GDPR" where its response letter gave the
  UK GDPR's article, or none.
- A processor kept whole under a legal-claims hold is one "record" in the trail: the pack counted
  it among the records kept ("6 record(s)" for five records and the processor's data), its Holds
  table said "1", its scheduled erasure "1 record(s) of all the data it holds".

- The pack of any request named every legal-claims hold on its subject, with its reason, though
  a hold acts on erasures only: personal data an auditor of an access request had no need of.
- A request denied or cancelled part-way read "closed unanswered" though systems had erased the
  subject's data by then, which its closing letter told the subject.
- The pack also says who opened a request staff took down, whether a CCPA acknowledgement went by
  its date, which processor each processor event is about, the day a statute's kept records are
  erased from (it said "after" that day), and, on the page, the e-mails received.

Requests are stored as intake stores them and given the facts each check needs (no workflow runs).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import pytest

from activities.mailbox_intake import file_message
from api.read_models import event_lines
from dsrflow.crypto.hashing import subject_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.stores.mailbox_store import decide
from dsrflow.stores.requests_store import create_request
from dsrflow.stores.staff_tokens import issue_token
from policy.mailbox import load_mailbox_policy
from policy.model import load_policy
from schemas.requests import NewRequest
from tests.evidence_pages import readable, section
from tests.support import (
    OUR_SENDER,
    answered_in_part,
    kept_whole_under,
    place_claims_hold,
    staff_headers,
    stored_request,
    unique_email,
)

# The statute's texts as the fan-out stores them (`kept_summary`), so the pack finds the statute.
BE_ACCOUNTING = {"basis": load_policy().policy.statutory_holds["be_accounting"].basis,
                 "law": load_policy().policy.statutory_holds["be_accounting"].law}


async def _page(http, pool, rid: str) -> str:
    return readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=await staff_headers(pool))).text)


async def _pack(http, pool, rid: str) -> dict:
    return (await http.get(f"/v1/requests/{rid}/evidence", headers=await staff_headers(pool))).json()


async def test_a_uk_requests_deadline_rule_is_the_one_its_due_date_follows(http, pool, settings):
    rid = await stored_request(pool, settings, "depth-uk", type_="access", regime="uk_gdpr")

    deadlines = section(await _page(http, pool, rid), "Deadlines", "Decisions")
    rule = deadlines.split("How they are computed ", 1)[1]

    assert "one month from the day of receipt or, where we asked the subject to verify their identity, from the " \
           "day they completed it (Art. 12(3) UK GDPR; the ICO's guidance on the right of access)" in rule, rule
    assert "to three months from the same day" in rule
    # Attested at intake: verified at receipt, so the month ran from it.
    assert "Month started" in deadlines and "staff attested the subject's identity" in deadlines, deadlines


async def _erasure_that_kept(pool, settings, regime: str, *, processor_whole: bool = False) -> str:
    """An erasure whose billing task kept three invoices under the Belgian accounting statute and,
    `processor_whole`, whose e-mail marketing processor was kept whole under a legal-claims hold
    (activities/connectors/manual_email.py), its response a refusal in part."""
    email = unique_email(f"depth-kept-{regime}")
    rid = await stored_request(pool, settings, f"depth-kept-{regime}", type_="erasure", regime=regime, email=email)
    invoices = {"system": "billing", "dataset": "invoices", "records": 3, "hold_kind": "statutory",
                "hold_ref": "be_accounting", **BE_ACCOUNTING, "until": "2033-12-31"}
    await pool.execute("""INSERT INTO system_tasks (request_id, system, action, status, found, changed, kept, kept_records)
                          VALUES ($1, 'billing', 'erase', 'done', 5, 5, 3, $2)""", uuid.UUID(rid), [invoices])
    # Kept until 31 December 2033, erased from the day after (activities/erasure_evidence.py).
    await pool.execute(
        """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                          hold_ref, erase_after, policy_version)
           SELECT id, $2, 'billing', 'invoices', k, 'statutory', 'be_accounting', '2034-01-01', policy_version
             FROM dsr_requests, unnest(ARRAY['1', '2', '3']) AS k WHERE id = $1""",
        uuid.UUID(rid), subject_hash(load_secret_key(settings), email))
    if processor_whole:
        hold = await place_claims_hold(pool, settings, email, ["email_marketing"])
        whole = await kept_whole_under(pool, settings, rid, email, "email_marketing", hold)
        await pool.execute("""INSERT INTO system_tasks (request_id, system, action, status, kept, kept_records)
                              VALUES ($1, 'email_marketing', 'erase', 'done', 1, $2)""", uuid.UUID(rid), [whole])
    await answered_in_part(pool, rid)
    return rid


@pytest.mark.parametrize(("regime", "basis"), [
    ("gdpr", "Art. 17(3)(b) GDPR: compliance with a legal obligation"),
    # Belgian law is no legal obligation under the UK GDPR (tests/test_letter_foreign_law.py).
    ("uk_gdpr", "Art. 6(1)(f) UK GDPR: our legitimate interests in complying with Belgian law"),
    ("vcdpa", "compliance with a legal obligation"),
])
async def test_what_an_erasure_kept_is_on_the_basis_its_letter_gave_in_the_requests_law(
        http, pool, settings, regime, basis):
    rid = await _erasure_that_kept(pool, settings, regime)

    kept = section(await _page(http, pool, rid), "Holds and kept records", "Letters sent")

    row = kept.split("Until ", 1)[1]
    assert f" {basis}; {BE_ACCOUNTING['law']} 31 December 2033 " in row, row
    # Erased on the day after "until", which the pack said it would be erased after; deleted, where
    # the request's law grants a deletion (dsrflow/i18n `in_law_words`).
    erased = "deleted" if regime == "vcdpa" else "erased"
    assert "3 record(s) of invoices in the system “billing”, kept under the statutory " \
           f"hold: Belgian accounting and tax records (invoices, payment confirmations, mandates), to be {erased} " \
           f"from 1 January 2034, the day after its period ends (0 {erased} since)" in row, row
    if regime != "gdpr":
        assert "17(3)(b) GDPR" not in row, row
    # The JSON keeps the basis as recorded, and gives the letter's beside it.
    (recorded,) = (await _pack(http, pool, rid))["holds"]["kept_records"]
    assert recorded["basis"] == BE_ACCOUNTING["basis"] and recorded["as_told"]["basis"] == basis


async def test_a_correction_that_left_records_an_erasure_kept_names_them_as_refused_in_part(http, pool, settings):
    """Its letter names them under "What we did not correct, and why" (tests/test_dpo_rectification.py);
    the pack said "the request was carried out except for: ." and nothing more."""
    rid = await stored_request(pool, settings, "depth-left", type_="rectification",
                               corrections={"city": "Gent"})
    await pool.execute("""INSERT INTO system_tasks (request_id, system, action, status, found, changed, datasets)
                          VALUES ($1, 'billing', 'rectify', 'done', 1, 1, $2)""", uuid.UUID(rid),
                       {"customers": {"found": 0, "changed": 0, "left": 1}, "mandates": {"found": 1, "changed": 1}})
    await answered_in_part(pool, rid)

    assert (await _pack(http, pool, rid))["decisions"]["refused_in_part"]["uncorrected"] == {"billing": 1}
    decisions = section(await _page(http, pool, rid), "Decisions", "Plan")
    assert "the request was carried out except for: 1 record(s) billing holds, not corrected: an earlier erasure " \
           "kept them under a hold, as they were." in decisions, decisions


async def test_a_processor_kept_whole_is_named_not_counted_as_one_record(http, pool, settings):
    rid = await _erasure_that_kept(pool, settings, "gdpr", processor_whole=True)

    text = await _page(http, pool, rid)
    pack = await _pack(http, pool, rid)

    part = pack["decisions"]["refused_in_part"]
    assert (part["kept_records"], part["kept_whole"]) == (3, ["email_marketing"])
    decisions = section(text, "Decisions", "Plan")
    assert "the request was carried out except for: 3 record(s) kept under the holds set out in Holds and kept " \
           "records; all the data email marketing holds, kept whole under a hold" in decisions, decisions
    assert "4 record(s)" not in decisions
    results = section(text, "Results per system", "Holds and kept records")
    assert "email marketing erase done 0 0 all 1 " in results, results
    kept = section(text, "Holds and kept records", "Letters sent")
    assert "email marketing all the data it holds all legal-claims hold placed" in kept, kept
    assert "all the data email marketing holds, kept under the legal-claims hold placed" in kept, kept
    assert "to be erased after its release (not erased yet)" in kept and "record(s) of all the data" not in kept
    assert date.fromisoformat(pack["holds"]["kept_records"][1]["until"])  # the review date, kept as recorded


async def test_a_ccpa_requests_acknowledgement_says_whether_it_went_by_its_date(http, pool, settings):
    """The CCPA's 10 business days to confirm receipt: the pack gave the date, not whether it was met."""
    rid = await stored_request(pool, settings, "depth-ack", type_="access", regime="ccpa")
    await pool.execute("UPDATE dsr_requests SET acknowledge_by = '2027-01-04' WHERE id = $1", uuid.UUID(rid))
    # 23:30 UTC on the 4th is 00:30 on the 5th in Brussels, the controller's calendar: a day late.
    await pool.execute("""INSERT INTO sent_letters (letter_key, request_id, purpose, recipient, subject, message_id,
                                                    body_text, body_html, sent_at)
                          VALUES ($1, $2, 'acknowledgement', 'x@example.com', 'Received', $3, 'text', 'html', $4)""",
                       f"{rid}:acknowledgement:1", uuid.UUID(rid), f"<{uuid.uuid4().hex}@dsrflow>",
                       datetime(2027, 1, 4, 23, 30, tzinfo=UTC))

    deadlines = (await _pack(http, pool, rid))["deadlines"]

    assert datetime.fromisoformat(deadlines["acknowledged_at"]) == datetime(2027, 1, 4, 23, 30, tzinfo=UTC)
    assert deadlines["acknowledged_on"] == "2027-01-05"  # the controller's day, which the console shows too
    assert deadlines["acknowledged_on_time"] is False
    text = section(await _page(http, pool, rid), "Deadlines", "Decisions")
    assert "Acknowledge by 4 January 2027: acknowledged 5 January 2027, 00:30 CET (UTC+1), after that date" in text


async def test_a_request_staff_opened_names_who_opened_it(http, pool, settings):
    row, _ = await issue_token(pool, "agent", "Piet Janssens")
    new = NewRequest(type="access", regime="gdpr", channel="phone", subject={"email": unique_email("depth-phone")},
                     identity_attested=True)
    opened, _ = await create_request(pool, new, loaded_policy=load_policy(settings.policy_path),
                                     secret=load_secret_key(settings), actor=f"agent:{str(row['id'])[:8]}",
                                     idempotency_key=None)

    text = section(await _page(http, pool, str(opened["id"])), "Request", "Identity verification")

    assert "Received through phone, opened by Piet Janssens (agent)" in text, text


# Each processor event as its writer records it (activities/connectors/manual_email.py, api/callbacks/).
_PROCESSOR_EVENTS = {
    "processor.asked": ({"system": "email_marketing", "action": "erase", "to": "privacy@processor.example"},
                        "Processor asked by e-mail (E-mail marketing (newsletters), to erase)"),
    "processor.reminded": ({"system": "email_marketing", "action": "erase", "to": "privacy@processor.example"},
                           "Processor reminded by e-mail (E-mail marketing (newsletters), to erase)"),
    "processor.confirmed": ({"system": "email_marketing", "action": "erase", "channel": "manual_email", "note": False},
                            "Processor confirmed by e-mail link (E-mail marketing (newsletters))"),
    "processor.callback": ({"system": "email_marketing", "status": "completed", "attempt": 1, "results_count": 4},
                           "Processor reported back (E-mail marketing (newsletters): completed, 4 record(s))"),
    "processor.export_received": ({"system": "email_marketing", "files": 2, "bytes": 10, "no_data": False},
                                  "Processor's export received (E-mail marketing (newsletters): 2 file(s))"),
}


@pytest.mark.parametrize("kind", sorted(_PROCESSOR_EVENTS))
def test_the_trail_says_which_processor_asked_confirmed_or_answered(kind):
    """The console's timeline and the pack's audit table named no processor on these lines, and the
    actor beside them is a code (`processor:email_marketing`)."""
    data, line = _PROCESSOR_EVENTS[kind]
    assert event_lines.describe_event({"event_type": kind, "data": data}, {},
                                      {"email_marketing": "E-mail marketing (newsletters)"}) == line


async def test_the_page_holds_the_subjects_e_mail_as_received(http, pool, settings):
    """A request by e-mail: the JSON held the message (`emails`), the printable page not."""
    rid = await stored_request(pool, settings, "depth-mail", type_="erasure")
    sender = await pool.fetchval("SELECT subject_email FROM dsr_requests WHERE id = $1", uuid.UUID(rid))
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, "privacy@onetagger.com", "Delete my account"
    mail["Date"], mail["Message-ID"] = format_datetime(datetime(2026, 12, 4, 23, 30, tzinfo=UTC)), make_msgid()
    mail.set_content("Please erase everything you hold about me.")
    filed = await file_message(pool, load_secret_key(settings), load_mailbox_policy(), mail.as_bytes(),
                               arrived_at=datetime(2026, 12, 4, 23, 31, tzinfo=UTC), source="sink",
                               our_sender=OUR_SENDER)
    assert filed is not None
    async with pool.acquire() as conn:
        assert await decide(conn, filed.message_id, "attached", actor="agent:depth", request_id=rid)

    page = (await http.get(f"/v1/requests/{rid}/evidence.html", headers=await staff_headers(pool))).text

    told = section(readable(page), "E-mails received (1)", "Letters sent")
    assert "Received 5 December 2026, 00:30 CET (UTC+1) (its date), reached our mailbox 5 December 2026, 00:31 CET " \
           "(UTC+1); attached to this request" in told, told
    assert f"From {sender} " in told and "Subject Delete my account " in told, told
    assert "Please erase everything you hold about me." in page


async def test_a_legal_claims_hold_is_in_the_pack_of_an_erasure_only(http, pool, settings):
    """A hold acts on erasures only; the pack of the subject's access request, which goes to
    auditors, named it and its reason (the subject's other legal matters) all the same."""
    email = unique_email("depth-hold")
    access = await stored_request(pool, settings, "depth-hold", type_="access", email=email)
    erasure = await stored_request(pool, settings, "depth-hold", type_="erasure", email=email)
    await place_claims_hold(pool, settings, email, ["crm"])

    assert (await _pack(http, pool, access))["holds"]["legal_claims_holds"] == []
    assert "Dispute over a support contract" not in await _page(http, pool, access)
    (hold,) = (await _pack(http, pool, erasure))["holds"]["legal_claims_holds"]
    assert hold["reason"] == "Dispute over a support contract, claim 2026/17"


async def test_a_request_closed_part_way_says_what_the_systems_had_done_by_then(http, pool, settings):
    """Closing undoes nothing: its letter tells the subject which systems had acted and which were
    still at work (workflows/refusals.py `_done_so_far`); the pack said only "closed unanswered"."""
    rid = await stored_request(pool, settings, "depth-cancelled", type_="erasure")
    task = {"action": "erase", "found": 3, "kept": 0, "message": None}
    async with pool.acquire() as conn:
        for n, (kind, actor, data) in enumerate((
                ("task.done", "workflow", {**task, "system": "crm", "changed": 3}),
                ("task.done", "workflow", {**task, "system": "billing", "changed": 0}),
                ("task.pending", "workflow", {**task, "system": "surveys", "changed": 0}),
                ("status.cancelled", "compliance:depth", {"reason": "Closed after review", "withdrawn_by_subject": False}),
                # The processor confirms after the request closed: not what the letter could say.
                ("task.done", "workflow", {**task, "system": "surveys", "changed": 2}))):
            await append_event(conn, event_key=f"{rid}:depth:{n}", request_id=rid, event_type=kind, actor=actor,
                               data=data)

    refusal = (await _pack(http, pool, rid))["decisions"]["refusal"]

    assert (refusal["kind"], refusal["acted_in"], refusal["asked_in"]) == ("cancellation", ["crm"], ["surveys"])
    decisions = section(await _page(http, pool, rid), "Decisions", "Plan")
    assert "When it was closed, crm had already acted on it (see Results): closing it undid nothing; surveys had " \
           "been asked and had not yet answered, each called off at the close where it could be: surveys, no " \
           "call-off on record: it may have acted (see Results and the audit trail)" in decisions, decisions


async def test_an_old_link_a_lock_that_left_the_link_working_and_a_confirmation_after_it_say_so_in_the_pack(http, pool, settings):
    """Since a lock refuses typed codes only, the pack's verification table read "locked" and then
    "verified" with nothing to say how the subject got through."""
    rid = await stored_request(pool, settings, "depth-lock")
    async with pool.acquire() as conn:
        for kind, data in (("verification.failed", {"method": "email_link", "attempts_left": 5, "earlier_link": True}),
                           ("verification.locked", {"refuses": "codes"}),
                           ("verification.succeeded", {"method": "email_link", "after_lock": True})):
            await append_event(conn, event_key=f"{rid}:{kind}", request_id=rid, event_type=kind, actor="workflow",
                               data=data)

    attempts = (await _pack(http, pool, rid))["verification"]["attempts"]
    assert [(a["event"], a["refuses"], a["after_lock"], a["earlier_link"]) for a in attempts] == [
        ("verification.failed", None, False, True), ("verification.locked", "codes", False, False),
        ("verification.succeeded", None, True, False)]
    text = section(await _page(http, pool, rid), "Identity verification", "Deadlines")
    assert "typed codes locked; the link in the subject's latest e-mail still confirms" in text, text
    assert "one-time link from the e-mail to the subject, after the typed codes were locked" in text, text
    assert "an earlier e-mail's link, no attempt counted, 5 attempt(s) left" in text, text
