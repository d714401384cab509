"""The evidence pack's decisions: what staff decided on the request and when the subject was told,
gathered from the audit events and the restriction's record, so that a reader finds them without
reading every event. Before this section the pack held each only as a raw event (a denial's
ground, an approval and its note, a cancellation's reason, an objection's decision, a restriction
and its lift), and a letter that failed and was skipped not at all outside them. A request closed
unverified is a refusal too (Art. 12(4)), which the section left out: its page had an empty
Decisions heading. Each letter that answers a decision says whether it went by the due date, on
the controller's calendar.

A response that refuses in part (records kept under a hold, a processor's data left out of a copy)
is a refusal too, whose letter carries the remedies: the section said "No decision: nothing was
... refused". A request stopped and resumed says who resumed it and why. The remedies a refusal's
letter names are the request's law's (`remedies`): the section named the GDPR's supervisory
authority and judicial remedy for a VCDPA refusal too, whose letter names an appeal and the
Attorney General.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from api.read_models.evidence_deadlines import on_time
from api.read_models.evidence_names import WHOLE_SYSTEM, version_policy
from dsrflow.domain.appeals_deferred import ended_undecided
from dsrflow.domain.references import short_reference
from dsrflow.stores.accuracy_disputes import DISPUTED, TOLD, data_recipients


def _first(events: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((e for e in events if e["event_type"] == kind), None)


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _letter(letters: list[dict[str, Any]], purpose: str) -> dict[str, Any] | None:
    return next((letter for letter in letters if letter["purpose"] == purpose), None)


def _told(letters: list[dict[str, Any]], purpose: str) -> Any:
    letter = _letter(letters, purpose)
    return letter["sent_at"] if letter else None


def _so_far(events: list[dict[str, Any]], closing: dict[str, Any]) -> dict[str, Any]:
    """What the systems had done when staff closed the request, as its closing letter tells the
    subject (workflows/refusals.py `_done_so_far`): those whose task had changed something, and
    those asked and still at work, called off at the close where they could be (an OpenDSR job, a
    processor asked by e-mail), which may have acted. Closing undoes neither: the pack said only
    "closed unanswered" of a request whose erasure had gone through four systems."""
    last: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["seq"] < closing["seq"] and e["event_type"].startswith("task.") and e["data"].get("system") \
                and e["event_type"] not in ("task.retried", "task.resolved"):
            last[e["data"]["system"]] = e
    asked_in = sorted(s for s, e in last.items() if e["event_type"] == "task.pending")
    return {"acted_in": sorted(s for s, e in last.items()
                               if e["event_type"] == "task.done" and e["data"].get("changed")),
            "asked_in": asked_in, "called_off": _called_off(events, asked_in)}


# What became of a system asked at the close, its latest word on record (event_words.py
# `asked_at_close_words`): a call-off's answer (its `outcome`), or one of these.
_AT_CLOSE = {"processor.acted_after_call_off": "acted_after", "processor.withdrawn": "told"}


def _called_off(events: list[dict[str, Any]], asked_in: list[str]) -> dict[str, str]:
    """Per system asked and not yet answered at the close, what its call-off came to: the pack
    said each "may have acted", where the trail knew it cancelled, refused or acted after all."""
    said: dict[str, str] = {}
    for e in events:
        system = e["data"].get("system")
        if system not in asked_in:
            continue
        if e["event_type"] == "processor.called_off" and said.get(system) != "acted_after":
            said[system] = str(e["data"].get("outcome"))
        elif e["event_type"] in _AT_CLOSE:
            said[system] = _AT_CLOSE[e["event_type"]]
    return said


def _refusal(events: list[dict[str, Any]], letters: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A denial, a request closed because the subject never confirmed their identity, or a
    cancellation that was not the subject's own withdrawal (each a refusal, Art. 12(4)): its
    ground, who decided, and when the letter with the reasons and remedies went."""
    denied, cancelled = _first(events, "status.denied"), _first(events, "status.cancelled")
    unverified = _first(events, "status.closed_unverified")
    if denied:
        return {"kind": "denial", "at": denied["occurred_at"], "by": denied["actor"],
                # The explanation, in events since 2026-12-04 (before, the letter alone held it).
                "ground": denied["data"].get("reason_code"), "reason": denied["data"].get("explanation"),
                "withdrawn_by_subject": False, **_so_far(events, denied),
                "letter_sent_at": _told(letters, "denial")}
    if unverified:
        # The workflow closes it when the verification window ends (`expired_at`), no one decides.
        return {"kind": "closed_unverified", "at": unverified["occurred_at"], "by": unverified["actor"],
                "ground": None, "reason": None, "withdrawn_by_subject": False,
                "verification_window_ended_at": _moment(unverified["data"].get("expired_at")),
                "letter_sent_at": _told(letters, "closed_unverified")}
    if cancelled:
        return {"kind": "cancellation", "at": cancelled["occurred_at"], "by": cancelled["actor"], "ground": None,
                "reason": cancelled["data"].get("reason"),
                "withdrawn_by_subject": bool(cancelled["data"].get("withdrawn_by_subject")),
                **_so_far(events, cancelled),
                "letter_sent_at": _told(letters, "cancellation")}
    return None


def _in_part(events: list[dict[str, Any]], letters: list[dict[str, Any]], kept: list[dict[str, Any]],
             missing: dict[str, str], uncorrected: dict[str, int]) -> dict[str, Any] | None:
    """The response letter, where it refused in part (its `letter.sent` event says so, as the
    letter activity decided: activities/letter_refusals.py `refuses_in_part`): what it kept back.
    A processor kept whole under a hold (dataset `all`) is one "record" in the trail, whatever it
    holds: it is named apart (`kept_whole`), as its letter names "your data in" it, not counted
    among the records (the section said "6 record(s)" for five records and a processor's data).
    One whose erasure the hold cut short (its kept record's `cut_short`) keeps only the data under
    the identifiers not sent, as its letter says: it is named apart again (`cut_short`), with its
    counts, not as kept whole. `uncorrected`: per system, the records a correction left as an
    earlier erasure kept them, as the letter names them ("What we did not correct, and why")."""
    refused = next((e for e in events if e["event_type"] == "letter.sent" and e["data"].get("purpose") == "response"
                    and e["data"].get("refusal")), None)
    if refused is None:
        return None
    return {"letter_sent_at": _told(letters, "response"),
            "kept_records": sum(k["records"] for k in kept if k["dataset"] != WHOLE_SYSTEM),
            "kept_whole": sorted({k["system"] for k in kept if k["dataset"] == WHOLE_SYSTEM and not k.get("cut_short")}),
            "cut_short": [{"system": k["system"], **k["cut_short"]} for k in kept if k.get("cut_short")],
            "missing": missing, "uncorrected": uncorrected}


def _interruptions(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each time the request's workflow ended while it was open, or after it closed with its
    restriction in force (found by the start sweep), and whether, when, by whom and why compliance
    resumed it."""
    resumed = [e for e in events if e["event_type"] == "request.resumed"]
    stops = []
    for e in (e for e in events if e["event_type"] == "request.workflow_ended"):
        after = next((r for r in resumed if r["seq"] > e["seq"]), None)
        if after is not None:
            resumed.remove(after)
        ended_at = e["data"].get("ended_at")  # Temporal's close time; events before it kept none
        stops.append({"found_at": e["occurred_at"], "ended": e["data"].get("ended"), "closed": e["data"].get("closed"),
                      "ended_at": datetime.fromisoformat(ended_at) if ended_at else None,
                      "resumed_at": after["occurred_at"] if after else None,
                      "resumed_by": after["actor"] if after else None,
                      "reason": after["data"].get("reason") if after else None})
    return stops


async def _remedies(conn: asyncpg.Connection, row: dict[str, Any]) -> dict[str, Any]:
    """The remedies a refusal's letter names under the request's law and policy version (the
    letter's `_remedies` partial: activities/letter_refusals.py), by what they are."""
    loaded = await version_policy(conn, row["policy_version"])
    assert loaded is not None, f"policy version {row['policy_version']} is not stored"  # intake stores it first
    remedies = loaded.policy.remedies_for(row["regime"], row["country"])
    appeal = None if remedies.appeal is None or (row["details"] or {}).get("appeal_of") else remedies.appeal.rule
    # A refused CCPA deletion's letter asks whether the consumer wants to opt out of the sale or
    # sharing where the policy says we sell or share (activities/letter_refusals.py
    # `remedies_context`; Cal. Code Regs. tit. 11 § 7022(f)(4)): the pack named the remedies only.
    asked = remedies.sale_opt_out if row["request_type"] == "erasure" and remedies.sells_or_shares else None
    return {"authority": remedies.authority_title,
            "authority_name": remedies.authority.name if remedies.authority else None,
            # The letter's heading for the courts where the law words it so ("Enforcement and the courts").
            "judicial": remedies.judicial_heading or "judicial remedy", "appeal": appeal,
            "sale_opt_out": None if asked is None else {"heading": asked.heading, "link": str(asked.link)}}


def _restriction(restriction: asyncpg.Record | None, events: list[dict[str, Any]],
                 letters: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A restriction from its start to its lift: beside its record, whether it keeps the subject's
    records from the controller's own erasures (Art. 18(1)(b) and (c)) and what it kept, from which
    erasure; whether the subject was told of the lift before any system was lifted (Art. 18(3)); the
    systems the lift reached and the Art. 19 recipients told of it."""
    if restriction is None:
        return None
    in_force, lifted = _first(events, "restriction.in_force"), _first(events, "restriction.lifted")
    told = next((e for e in events if e["event_type"] == "letter.sent"
                 and e["data"].get("purpose") == "restriction_lift"), None)
    first_lift = next((e for e in events if e["event_type"].startswith("task.")
                       and e["data"].get("action") == "lift_restriction"), None)
    return {**dict(restriction), "lift_letter_sent_at": _told(letters, "restriction_lift"),
            "keeps_from_erasure": bool(in_force and in_force["data"].get("keeps_from_erasure")),
            "kept_from_erasure": [{"at": e["occurred_at"], "records": e["data"].get("records"),
                                   "rule": e["data"].get("rule"), "system": e["data"].get("system"),
                                   "dataset": e["data"].get("dataset")}
                                  for e in events if e["event_type"] == "restriction.kept_from_erasure"],
            # By the trail's order: the letter's event before the first lift task's.
            "subject_told_before_lift": None if told is None else first_lift is None or told["seq"] < first_lift["seq"],
            # Reached after the close by a task left running (activities/restrictions.py `_reached_late`).
            "reached_late": [{"system": e["data"].get("system"), "at": e["occurred_at"]}
                             for e in events if e["event_type"] == "restriction.reached"],
            "lifted_again": _lifted_again(events), **_lifts_by_hand(events),
            "lifted_in": lifted["data"].get("systems") if lifted else None,
            "lifted_by": lifted["actor"] if lifted else None,
            "recipients_told": lifted["data"].get("recipients") if lifted else None}


def _lifts_by_hand(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Held lifts the start sweep handed to staff (activities/held_lifts.py: a person lifts the
    system), `by_hand_owed` while nothing records they did, and `lifted_by_hand` once staff recorded
    it (dsrflow/stores/lifts_by_hand.py): when, by whom, how. The pack said nothing of either."""
    handed = {e["data"].get("system"): e["occurred_at"] for e in events
              if e["event_type"] == "restriction.lift_released" and e["data"].get("status") == "needs_attention"}
    done = [{"system": e["data"].get("system"), "at": e["occurred_at"], "by": e["actor"], "note": e["data"].get("note"),
             # Carried out after a newer restriction of the subject told staff not to (its id), or None.
             "after_restriction": e["data"].get("after_restriction")}
            for e in events if e["event_type"] == "restriction.lifted_by_hand"]
    lifted = {d["system"] for d in done}
    return {"lifted_by_hand": done, "by_hand_owed": [{"system": system, "since": since} for system, since
                                                     in handed.items() if system not in lifted]}


def _lifted_again(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each lift the workflow ran again after recording the lift (workflows/restriction_lifecycle.py
    `_lift_again`: the restriction reached the system after the lift had begun there), and how its
    run ended, if it has: the pack said "Lifted" while the system could still be restricted."""
    again = []
    for retried in events:
        data = retried["data"] or {}
        if not (retried["event_type"] == "task.retried" and retried["actor"] == "workflow"
                and data.get("action") == "lift_restriction"):
            continue
        # Its first record that is an end: `task.pending` is the run's start (its processor asked).
        ended = next((e for e in events if e["seq"] > retried["seq"] and e["event_type"].startswith("task.")
                      and e["event_type"] not in ("task.retried", "task.pending")
                      and e["data"].get("system") == data.get("system")
                      and e["data"].get("action") == "lift_restriction"), None)
        again.append({"system": data.get("system"), "at": retried["occurred_at"],
                      "ended": ended and ended["event_type"].removeprefix("task."),
                      "ended_at": ended and ended["occurred_at"]})
    return again


def _named(request_id: str) -> dict[str, str]:
    """A request as the letters name it (its reference) and as the JSON does (its id)."""
    return {"id": request_id, "reference": short_reference(request_id)}


async def _closed_for_another(conn: asyncpg.Connection, appeal_ids: list[str]) -> dict[str, str]:
    """Per appeal of a refusal, the other appeal it was closed for (one decision per refusal:
    activities/appeal_claims.py records `decided_as` on its `status.cancelled`). The refused
    request's pack read "cancelled" for such an appeal, as if the subject had been refused twice."""
    rows = await conn.fetch(
        """SELECT request_id, data->>'decided_as' AS decided_as FROM audit_events
            WHERE request_id = ANY($1::uuid[]) AND event_type = 'status.cancelled' AND data ? 'decided_as'""",
        appeal_ids)
    return {str(r["request_id"]): r["decided_as"] for r in rows}


async def _decided_as(conn: asyncpg.Connection, cancelled: dict[str, Any] | None) -> dict[str, Any] | None:
    """The appeal decided instead of this one, where this one was closed for it: whether it had
    been decided when this one was closed (`decided`, as the letter said) and its status now. The
    pack read "Closed unanswered (a refusal)" by "workflow", naming the other only in a sentence."""
    data = (cancelled or {}).get("data") or {}
    if not data.get("decided_as"):
        return None
    status = await conn.fetchval("SELECT status FROM dsr_requests WHERE id = $1::uuid", data["decided_as"])
    # That one may since have ended without a decision (withdrawn, cancelled, closed or denied
    # unidentified: dsrflow/domain/appeals_deferred.py): then it answered nothing, and the pack says how.
    return {**_named(data["decided_as"]), "decided": bool(data.get("decided")), "status": status,
            "ended_undecided": await ended_undecided(conn, data["decided_as"])}


async def _decides_also(conn: asyncpg.Connection, appeal_of: str, request_id: str) -> list[dict[str, Any]]:
    """The appeals of the same refusal closed for this one: its decision answers them too, unless
    this one ended without a decision (`ended_undecided`: then it answers none, as its closing letter
    told the subject: activities/letter_closed_for.py)."""
    siblings = await conn.fetch("SELECT id, received_at, closed_at FROM dsr_requests WHERE details->>'appeal_of' = $1"
                                " AND id <> $2::uuid ORDER BY received_at", appeal_of, request_id)
    closed_for = await _closed_for_another(conn, [str(s["id"]) for s in siblings])
    answered = [s for s in siblings if closed_for.get(str(s["id"])) == request_id]
    ending = await ended_undecided(conn, request_id) if answered else None
    return [{**_named(str(s["id"])), "received_at": s["received_at"], "closed_at": s["closed_at"],
             "ended_undecided": ending} for s in answered]


def _letters_not_sent(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each letter whose step failed: why, and how staff answered (retried, or skipped with their
    note), and whether a skipped one had gone after all (`letter.skip_settled`)."""
    answers = {e["data"].get("about"): e for e in events if e["event_type"] == "step.resolved"}
    settled = {e["data"].get("purpose"): e["data"].get("went") for e in events
               if e["event_type"] == "letter.skip_settled"}
    found = []
    for e in events:
        about = str(e["data"].get("about") or "")
        if e["event_type"] != "step.failed" or not about.endswith(" letter"):
            continue
        answer = answers.get(about)
        found.append({"letter": about, "failed_at": e["occurred_at"], "message": e["data"].get("message"),
                      "answered_at": answer["occurred_at"] if answer else None,
                      "answered_by": answer["actor"] if answer else None,
                      "answer": answer["data"].get("resolution") if answer else None,
                      # step_about() wrote the purpose with spaces: "restriction lift letter".
                      "went_after_all": settled.get(about.removesuffix(" letter").replace(" ", "_"))})
    return found


def _objection(row: dict[str, Any], decided: dict[str, Any], letters: list[dict[str, Any]],
               timezone: str) -> dict[str, Any]:
    """Compliance's Art. 21(1) decision: overriding the objection on compelling grounds refuses it
    in part (the response letter then gives the reasons and the remedies); else the processing
    it names stops."""
    sent = _told(letters, "response")
    return {"at": decided["occurred_at"], "by": decided["actor"],
            "scope": (row["details"] or {}).get("objection_scope"),
            "compelling_grounds": decided["data"].get("compelling_grounds"),
            "explanation": decided["data"].get("explanation"), "letter_sent_at": sent,
            "letter_on_time": on_time(sent, row["current_due_date"], timezone)}


async def _accuracy_dispute(conn: asyncpg.Connection, row: dict[str, Any],
                            events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The subject's disputes of accuracy recorded against a refused correction, and each record
    that the recipients of the data were told of them (`recipients_told`: keys, their names as
    recorded, or `none_to_tell`, with the note); `owed` while a dispute was recorded after the last
    such record, or none is (dsrflow/stores/accuracy_disputes.py). `recipients_of_data`: who
    received data of the request's systems, whom the form offers. None: no dispute recorded."""
    recorded = [e for e in events if e["event_type"] == DISPUTED]
    if not recorded:
        return None
    told = [e for e in events if e["event_type"] == TOLD]
    return {
        "recorded": [{"at": e["occurred_at"], "by": e["actor"], "statement": e["data"].get("statement")}
                     for e in recorded],
        "recipients_told": [{"at": e["occurred_at"], "by": e["actor"], "recipients": e["data"].get("recipients", []),
                             "names": e["data"].get("names", []), "none_to_tell": bool(e["data"].get("none_to_tell")),
                             "note": e["data"].get("note")} for e in told],
        "owed": not told or told[-1]["seq"] < recorded[-1]["seq"],
        "recipients_of_data": await data_recipients(conn, row),
    }


async def decisions(conn: asyncpg.Connection, row: dict[str, Any], events: list[dict[str, Any]],
                    letters: list[dict[str, Any]], timezone: str, *, kept: list[dict[str, Any]],
                    missing: dict[str, str], uncorrected: dict[str, int] | None = None) -> dict[str, Any]:
    """The decisions section of the pack (see the module's docstring); `timezone` the controller's
    under the request's policy version; `kept` what holds kept (the pack's `holds.kept_records`),
    `missing` the processors' exports a package lacks, `uncorrected` per system the records a
    correction left as an erasure kept them."""
    approved, reviewed = _first(events, "approval.granted"), _first(events, "package.reviewed")
    decided = _first(events, "objection.decided")
    restriction = await conn.fetchrow(
        """SELECT grounds, systems, since, lift_reason, lift_requested_by, lift_requested_at,
                  lift_effective_on, lifted_at FROM restrictions WHERE request_id = $1""", row["id"])
    appeal_of = (row["details"] or {}).get("appeal_of")
    appeals = await conn.fetch(
        "SELECT id, status, received_at FROM dsr_requests WHERE details->>'appeal_of' = $1 ORDER BY received_at",
        str(row["id"]))
    closed_for = await _closed_for_another(conn, [str(a["id"]) for a in appeals])
    refusal = _refusal(events, letters)
    if refusal is not None:
        refusal["letter_on_time"] = on_time(refusal["letter_sent_at"], row["current_due_date"], timezone)
        refusal["decided_as"] = await _decided_as(conn, _first(events, "status.cancelled") if
                                                  refusal["kind"] == "cancellation" else None)
    # An objection overridden on compelling grounds refuses in part too: its own entry says so.
    overridden = decided and decided["data"].get("compelling_grounds")
    in_part = None if overridden else _in_part(events, letters, kept, missing, uncorrected or {})
    if in_part is not None:
        in_part["letter_on_time"] = on_time(in_part["letter_sent_at"], row["current_due_date"], timezone)
    return {
        "approval": None if approved is None else {
            "at": approved["occurred_at"], "by": approved["actor"], "note": approved["data"].get("note"),
            # An appeal's (a complaint's) reasons, as its response letter quotes them; None otherwise.
            "explanation": approved["data"].get("explanation"),
            "package_reviewed_at": reviewed["occurred_at"] if reviewed else None,
            "package_reviewed_by": reviewed["actor"] if reviewed else None},
        "refusal": refusal,
        "refused_in_part": in_part,
        "remedies": await _remedies(conn, row),
        "interruptions": _interruptions(events),
        "objection": None if decided is None else _objection(row, decided, letters, timezone),
        "restriction": _restriction(restriction, events, letters),
        # Appeals name requests by the reference the subject knows (the letters' `ref.`).
        "appeal_of": None if not appeal_of else {"id": str(appeal_of), "reference": short_reference(str(appeal_of))},
        "appeals": [{**_named(str(a["id"])), "status": a["status"], "received_at": a["received_at"],
                     "decided_as": _named(closed_for[str(a["id"])]) if str(a["id"]) in closed_for else None}
                    for a in appeals],
        # The other appeals of the same refusal closed undecided because this one decides them.
        "decides_also": [] if not appeal_of else await _decides_also(conn, str(appeal_of), str(row["id"])),
        "letters_not_sent": _letters_not_sent(events),
        # A dispute of accuracy against a refused correction, and whom it was passed on to.
        "accuracy_dispute": await _accuracy_dispute(conn, row, events),
    }
