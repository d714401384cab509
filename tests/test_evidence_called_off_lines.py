"""What a compliance officer (and a DPO auditing them) reads of the paths of requests closed
unanswered while others still worked on them, and of restriction edges (hDU): the timeline's lines,
the evidence pack (JSON and page) and the console's request page. Each asks "what happened, who did
it, when, and what is still in force?".

Found and fixed: `restriction.reached`, `erasure.deferred_called_off` and
`erasure.called_off_unrestricted` named no system; a lift run again by the workflow read "Task
retried (Surveys)" by "workflow", and the lift's own line "Restriction lifted in every system"
while that system could still be restricted; a processor told by e-mail not to act read "(Surveys,
to erase)"; a task the close ended read "task needs attention"; a processor's own act named it by a
code (`processor:crm`); the pack's Decisions said of every system asked at the close that it "may
have acted", and the restriction lifted with no word of the lift run again; neither the pack nor
the deferred panel said whether records a called-off erasure kept are still restricted.

The trails are written as the activities write them (their event data), on requests stored as intake
stores them (the session's policy has no systems: the database systems play the processors); the
paths themselves run end to end, and were read there too, in tests/test_closed_request_called_off.py,
tests/test_closed_request_asked_tasks.py, tests/test_deferred_closed_unanswered.py and
tests/test_restriction_reached_after_lift.py. No workflow, no worker: the app in-process (`http`).
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from activities.letter_templates import staff_alert_detail
from api.read_models.event_lines import describe_event
from api.read_models.event_types import EVENT_WORDS
from dsrflow.crypto.hashing import subject_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.stores.deferred_store import call_off_deferred
from dsrflow.stores.mailbox_store import DECISIONS
from schemas.requests import RequestStatus
from tests.evidence_pages import readable, section
from tests.support import console_sign_in, staff_headers, stored_request, unique_email

ROOT = Path(__file__).resolve().parent.parent
# Event types of the trail as the code spells them: "<kind>.<what>", its kind one the table knows.
_KINDS = "|".join(sorted({kind.split(".")[0] for kind in EVENT_WORDS} | {"status", "mail", "staff"}))
_LITERAL = re.compile(rf"[\"']((?:{_KINDS})\.[a-z_0-9]+)[\"']")
_FAMILY = re.compile(r"event_type=f[\"']([a-z_.]+)\{")
# Families an f-string writes, each with every member it can write.
FAMILIES = {
    "status.": [f"status.{s.value}" for s in RequestStatus],
    "task.": [f"task.{s}" for s in ("done", "not_found", "needs_attention", "pending")],
    "mail.": [f"mail.{d}" for d in DECISIONS],
    "erasure.deferred_": [f"erasure.deferred_{w}" for w in ("submitted", "confirmed", "failed", "retried", "settled")],
}
# Recorded with no request (the mailbox's own, staff tokens): no request's timeline or pack shows them.
NO_REQUEST = {"mail.received", "mail.alerted", "mail.reminded", "mail.readable", "mail.unreadable", "mail.dismissed",
              "staff.token_created", "staff.token_revoked", "staff.open_limit_reached"}
# Literals of that shape that are no event: a logger's name; the prefix of the deadline warnings
# (`deadline.due_in_<n>_days`, which describe_event words itself).
NOT_EVENTS = {"mail.log", "deadline.due_in_"}
# The systems as the plan labels them (the session's policy has none: tests/conftest.py); the
# processors of these paths are played by them, as the lines read the same whatever the connector.
LABELS = {"crm": "CRM (contacts, support requests, live chat)", "analytics": "Website analytics (users and page events)",
          "billing": "Billing (customers, invoices, payments, mandates)", "surveys": "Survey service provider"}


def _recorded_types() -> tuple[set[str], set[str]]:
    """Every event type the code's sources spell, and the f-string families it writes."""
    literals, families = set(), set()
    for folder in ("activities", "api", "dsrflow", "workflows", "workers", "schemas"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            literals |= set(_LITERAL.findall(text))
            families |= set(_FAMILY.findall(text))
    return literals - NOT_EVENTS, families


def test_every_event_type_the_code_records_has_words():
    literals, families = _recorded_types()
    assert families == set(FAMILIES), "a new family of event types: list its members in FAMILIES"
    assert "processor.acted_after_call_off" in literals and "restriction.reached" in literals  # the scan reads
    for kind in sorted(literals | {k for members in FAMILIES.values() for k in members}):
        line = describe_event({"event_type": kind, "actor": "workflow", "data": {"system": "crm"}})
        assert "_" not in line and kind not in line, (kind, line)
        if kind not in NO_REQUEST and not kind.startswith(("status.", "task.")):
            assert kind in EVENT_WORDS, f"{kind}: no words of its own in api/read_models/event_types.py"


async def _event(pool, rid: str, kind: str, data: dict[str, Any], actor: str = "workflow") -> None:
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{rid}:{uuid.uuid4().hex}", request_id=rid, event_type=kind, actor=actor,
                           data=data)


async def _closed(pool, rid: str, systems: list[str], action: str) -> None:
    """Planned in `systems` (the pack names them by the plan's labels), then closed unanswered."""
    tasks = [{"system": s, "action": action, "connector": "sql", "label": LABELS[s], "recipient": None, "scope": None}
             for s in systems]
    await pool.execute(
        """INSERT INTO request_plans (request_id, plan)
           SELECT id, jsonb_build_object('request_id', id, 'policy_version', policy_version, 'request_type', request_type,
                                         'tasks', $2::jsonb) FROM dsr_requests WHERE id = $1""", uuid.UUID(rid), tasks)
    await pool.execute("UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1::uuid", rid)


async def _read(http, pool, rid: str) -> tuple[dict[str, Any], str, str]:
    """The pack's JSON, its page and the console's request page as compliance reads them."""
    headers = await staff_headers(pool)
    pack = (await http.get(f"/v1/requests/{rid}/evidence", headers=headers)).json()
    page = readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=headers)).text)
    await console_sign_in(http, pool, "compliance")
    return pack, page, readable((await http.get(f"/console/requests/{rid}")).text)


async def test_processors_called_off_told_not_to_act_and_acting_all_the_same_read_as_such(http, pool, settings):
    """Paths 1 and 2: an erasure withdrawn while an OpenDSR job and a processor asked by e-mail were
    pending. Each line names the system and what it answered; nothing reads as a code."""
    rid = await stored_request(pool, settings, "called-off", type_="erasure")
    await _closed(pool, rid, ["crm", "analytics", "billing", "surveys"], "erase")
    for system in ("crm", "analytics", "billing", "surveys"):
        await _event(pool, rid, "task.pending", {"system": system, "action": "erase", "changed": 0})
    await _event(pool, rid, "status.cancelled", {"reason": "I changed my mind", "withdrawn_by_subject": True},
                 actor="agent:test")
    await _event(pool, rid, "processor.called_off", {"system": "crm", "outcome": "cancelled"})
    await _event(pool, rid, "processor.called_off", {"system": "analytics", "outcome": "refused"})
    await _event(pool, rid, "processor.called_off", {"system": "billing", "outcome": "unreachable"})
    await _event(pool, rid, "processor.acted_after_call_off", {"system": "crm", "action": "erase",
                                                               "attempt": 1, "outcome": "completed", "results_count": 2},
                 actor="processor:crm")
    for system, said in (("crm", "called off: the request was closed unanswered, and the job was cancelled at CRM "
                                   "before it acted"),
                         ("analytics", "not called off: the request was closed unanswered, but Analytics refused to "
                                       "cancel the job (HTTP 409) while it was still pending; it may still act"),
                         ("surveys", "not answered: the request was closed before Survey service provider confirmed "
                                     "the erasure, and its link takes no answer any more; told by e-mail that the "
                                     "request is withdrawn, not to act on it")):
        await _event(pool, rid, "task.needs_attention", {"system": system, "action": "erase", "message": said})
    await _event(pool, rid, "processor.withdrawn", {"system": "surveys", "action": "erase", "message_id": "<m@x>"})

    pack, page, console = await _read(http, pool, rid)

    assert [e["event_type"] for e in pack["audit"]["events"] if e["event_type"].startswith("processor.")] == [
        "processor.called_off", "processor.called_off", "processor.called_off", "processor.acted_after_call_off",
        "processor.withdrawn"]
    for line in ("Processor's job called off, its request closed (CRM (contacts, support requests, live chat): cancelled before it acted)",
                 "(Website analytics (users and page events): refused while the job was pending: it may still act, and must be told by hand)",
                 "(Billing (customers, invoices, payments, mandates): not reached: it may still act, and must be told by hand)",
                 "Processor carried out a job after cancelling it at the call-off (CRM (contacts, support requests, live chat): it acted on the "
                 "request closed unanswered, 2 record(s))",
                 "Processor told by e-mail not to act: the request was closed (Survey service provider, which had "
                 "been asked to erase)",
                 # Its task's record: "needs attention" alone, for a job the processor had cancelled.
                 "CRM (contacts, support requests, live chat) task ended: its job called off at the processor",
                 "Website analytics (users and page events) task needs attention: its job could not be called off",
                 "Survey service provider task ended: the request closed before the processor confirmed"):
        assert line in page and line in console, line
    for text in (page, console):
        assert not re.search(r"\bprocessor\.\w|\{['\"]", text)
    # The processor that acted by its own signed word, by its label (it read `processor:crm`).
    assert "CRM (contacts, support requests, live chat) (processor)" in console and "processor:crm" not in console
    # What each system asked at the close came to, under Decisions, where each "may have acted".
    assert pack["decisions"]["refusal"]["called_off"] == {"analytics": "refused", "billing": "unreachable",
                                                          "crm": "acted_after", "surveys": "told"}
    decisions = section(page, "Decisions", "Plan")
    assert ("each called off at the close where it could be: Website analytics (users and page events), its "
            "call-off: refused while the job was pending: it may still act, and must be told by hand; Billing "
            "(customers, invoices, payments, mandates), its call-off: not reached: it may still act, and must be "
            "told by hand; CRM (contacts, support requests, live chat), its call-off: cancelled, then carried out "
            "all the same: it acted against the instruction, and staff were alerted; Survey service provider, told "
            "by e-mail not to act on it (see Results and the audit trail)") in decisions, decisions


async def test_a_lift_run_again_is_said_and_the_pack_says_what_is_lifted(http, pool, settings):
    """Path 4: a restriction closed part-way whose task left running restricted a system (the survey
    processor, played by analytics) after the lift was decided; the workflow ran its lift there
    again. Until that run ends the pack says the system may still be restricted; then that it was
    lifted there."""
    rid = await stored_request(pool, settings, "lift-again", type_="restriction",
                               restriction_grounds=["accuracy_contested"])
    await _closed(pool, rid, ["crm", "analytics"], "restrict")
    await pool.execute("""INSERT INTO restrictions (request_id, subject_hash, grounds, systems, keeps_from_erasure,
                                                    lift_reason, lift_requested_by, lift_requested_at, lifted_at)
                          VALUES ($1, 'h', '{accuracy_contested}', '{crm,analytics}', false, 'Accuracy checked',
                                  'compliance:test', now(), now())""", uuid.UUID(rid))
    await _event(pool, rid, "restriction.in_force", {"grounds": ["accuracy_contested"], "systems": ["crm"],
                                                     "keeps_from_erasure": False})
    await _event(pool, rid, "restriction.lift_requested", {"reason": "Accuracy checked", "notice_days": 0},
                 actor="compliance:test")
    await _event(pool, rid, "restriction.reached", {"system": "analytics"})
    await _event(pool, rid, "restriction.lifted", {"systems": ["crm", "analytics"], "recipients": [], "held": []},
                 actor="compliance:test")
    await _event(pool, rid, "task.retried", {"system": "analytics", "action": "lift_restriction"})

    pack, page, console = await _read(http, pool, rid)

    again = pack["decisions"]["restriction"]["lifted_again"]
    assert [(a["system"], a["ended"]) for a in again] == [("analytics", None)], again
    assert [r["system"] for r in pack["decisions"]["restriction"]["reached_late"]] == ["analytics"]
    decisions = section(page, "Decisions", "Plan")
    assert "reached after the close by its task left running" in decisions, decisions
    assert "Its lift in the system “Website analytics (users and page events)” was run again by the workflow" in decisions
    assert "still under way: it may still be restricted there." in decisions, decisions
    for text in (page, console):
        assert "Restriction in force at one more system, reached after the close (Website analytics (users and page events): its task, left running " \
               "at the close, restricted the data there)" in text
        assert "Restriction lifted, except where it came into force after the lift began: lifted again there " \
               "(Website analytics (users and page events))" in text and "Restriction lifted in every system" not in text
        assert "Lift run again, by the workflow (Website analytics (users and page events): the restriction reached it after the lift had begun " \
               "there, so that lift may have come first; it may be restricted there until this run ends)" in text
        assert "Task retried" not in text

    restriction = console.split(" Restriction lifted since ", 1)[1]
    assert ("its lift runs again in the system “Website analytics (users and page events)”, which the restriction "
            "reached after the lift began: it may still be restricted there") in restriction, restriction[:600]

    # The run's start (its processor asked) is no end.
    await _event(pool, rid, "task.pending", {"system": "analytics", "action": "lift_restriction", "changed": 0})
    _, page, _ = await _read(http, pool, rid)
    assert "still under way: it may still be restricted there." in section(page, "Decisions", "Plan")
    await _event(pool, rid, "task.done", {"system": "analytics", "action": "lift_restriction", "found": 1, "changed": 1})
    _, page, console = await _read(http, pool, rid)
    assert re.search(r"so that lift may have come first; lifted there \d", section(page, "Decisions", "Plan"))
    assert "its lift runs again" not in console
    # Which task ended, the lift's or the restriction's: both read "<system> task done".
    assert "Website analytics (users and page events) lift task done" in console


async def test_a_called_off_erasure_says_what_its_hold_keeps_restricted_and_what_a_statute_still_erases(
        http, pool, settings):
    """Path 3: an erasure withdrawn after a legal-claims hold kept CRM records and a statute kept an
    invoice. The close calls off the first (dsrflow/stores/deferred_store.py), restricted until the
    hold's release, then no longer; the invoice is still erased at its period's end."""
    email = unique_email("called-off-hold")
    rid = await stored_request(pool, settings, "called-off-hold", type_="erasure", email=email)
    hashed = subject_hash(load_secret_key(settings), email)
    await pool.executemany(
        """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind, hold_ref,
                                          erase_after, policy_version)
           SELECT id, $2, $3, $4, $5, $6, $7, $8::date, policy_version FROM dsr_requests WHERE id = $1""",
        [(uuid.UUID(rid), hashed, "crm", "contacts", key, "legal_claims", "hold-1", None) for key in ("c1", "c2")]
        + [(uuid.UUID(rid), hashed, "billing", "invoices", "i1", "statutory", "be_accounting", date(2033, 1, 1))])
    await _closed(pool, rid, ["crm", "billing"], "erase")
    async with pool.acquire() as conn:
        assert await call_off_deferred(conn, rid, actor="workflow") == {"crm": 2}

    pack, page, console = await _read(http, pool, rid)

    held = {(d["system"], d["hold_kind"]): d for d in pack["holds"]["deferred_erasures"]}
    assert held["crm", "legal_claims"]["called_off"] == 2 and held["crm", "legal_claims"]["unrestricted"] == 0
    assert held["billing", "statutory"]["called_off"] == 0
    line = ("Deferred erasure called off: the request was closed unanswered (CRM (contacts, support requests, live chat): 2 record(s): not erased when the "
            "hold is released)")
    assert line in page and line in console
    scheduled = page.split("Scheduled erasures:", 1)[1]
    assert "kept as they were, under the ordinary retention of their system, restricted until the hold is released (and while another hold or a restriction keeps them so)" in scheduled, scheduled
    assert "to be erased from 1 January 2033, the day after its period ends" in scheduled, scheduled
    panel = console.split("Erasures deferred by a hold", 1)[1]
    assert "2 not to be erased: the request was closed unanswered (called off), restricted until the hold is " \
           "released (and while another hold or a restriction keeps them so)" in panel, panel[:800]

    # The hold released, the sweep lifts their restriction (activities/called_off_marks.py).
    await pool.execute("UPDATE deferred_erasures SET unrestricted_at = now() WHERE request_id = $1::uuid "
                       "AND hold_kind = 'legal_claims'", uuid.UUID(rid))
    await _event(pool, rid, "erasure.called_off_unrestricted", {"system": "crm", "records": 2}, actor="erasure-sweep")
    pack, page, console = await _read(http, pool, rid)
    assert {d["system"]: d["unrestricted"] for d in pack["holds"]["deferred_erasures"]} == {"billing": 0, "crm": 2}
    assert re.search(r"and no longer restricted since \d+ \w+ \d{4}, \d\d:\d\d \w+ \(UTC\+\d\), the hold released",
                     page.split("Scheduled erasures:", 1)[1])
    panel = console.split("Erasures deferred by a hold", 1)[1]
    assert "(called off), no longer restricted: the hold was released" in panel, panel[:800]
    rest = (await http.get(f"/v1/requests/{rid}/deferred-erasures", headers=await staff_headers(pool))).json()
    assert {d["system"]: (d["states"], d["unrestricted"]) for d in rest} == {
        "billing": ({"held": 1}, 0), "crm": ({"called_off": 2}, 2)}, rest
    line = "Records of the called-off erasure no longer restricted: the hold was released (CRM (contacts, support requests, live chat): 2 record(s))"
    assert line in page and line in console
    assert "erasure-sweep" in console  # who did it, as the trail records the sweep


async def test_an_agent_reads_no_timeline_nor_pack(http, pool, settings):
    """What these lines say (a hold released, a processor's breach) is compliance's: an agent's page
    of the same request shows no timeline, and the pack is refused them."""
    rid = await stored_request(pool, settings, "agent-reads", type_="erasure")
    await _closed(pool, rid, ["crm"], "erase")
    await _event(pool, rid, "erasure.called_off_unrestricted", {"system": "crm", "records": 1}, actor="erasure-sweep")
    agent = await staff_headers(pool, "agent")
    assert (await http.get(f"/v1/requests/{rid}/evidence", headers=agent)).status_code == 403
    await console_sign_in(http, pool, "agent")
    page = readable((await http.get(f"/console/requests/{rid}")).text)
    assert "no longer restricted" not in page and "Records of the called-off erasure" not in page


def test_a_call_off_alert_quotes_the_processors_error_without_the_subjects_address():
    """A staff alert carries no personal data of the subject (activities/staff_alert_words.py
    `quoted`). The call-off's alert puts the processor's error in `failed`, which went into the
    alert's clear text as it came: a processor echoing the subject's address, or an error page."""
    ctx = {"facts": {"what": "call_off_by_hand", "system": "crm",
                     "failed": "HTTP 409: job for ada.lovelace@example.org " + "x" * 3000},
           "timezone": "Europe/Brussels", "systems": LABELS}
    detail = staff_alert_detail(ctx, "en", {"email": "ada.lovelace@example.org"})
    assert "ada.lovelace@example.org" not in detail and len(detail) < 1500
