"""The console's request page, what it shows: the request and its deadlines, each system's task
(api/console/request_tasks.py), what holds kept, the timeline, every letter sent, the actions the
signed-in role may take now, and the panels outside the live region; and the live region itself,
which polls (api/console/request_page.py serves the page, api/console/request_actions.py its actions).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from fastapi import Request

from api.auth import Staff
from api.console.accuracy_disputes import dispute_context
from api.console.deferred import deferred_context
from api.console.lifts_by_hand import lifts_by_hand_context
from api.console.refusals import shown_outcome, shown_refusal
from api.console.request_resume import resume_context
from api.console.request_tasks import task_rows
from api.console.team import team_context
from api.console.view import (
    LANGUAGE_NAMES,
    allowed_actions,
    days_left_badge,
    describe_event,
    live_region,
    policy_system_labels,
    temporal_ui_link,
)
from api.problems import Problem
from api.read_models.actors import actor_name
from api.read_models.event_lines import lifted_again, own_systems
from api.read_models.event_words import words_for
from api.read_models.evidence import assemble_evidence, cut_short_systems, planned_recipients
from api.read_models.staff_reach import (
    COMPLAINT_REASONS,
    LEGAL_CLAIMS_HOLDS,
    TIMELINE,
    WORKFLOW_HISTORY,
    may_read,
    readable_letters,
)
from api.service import NotAnswering, live_or_engine_away, workflow_failing
from api.staff_actions import (
    REFUSING_ROLE,
    Situation,
    StaffAction,
    deciding,
    owed_under_way,
)
from api.state import AppState
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.references import short_reference
from dsrflow.domain.request_resume import ended_flag
from dsrflow.i18n import language_name
from dsrflow.stores.restrictions_store import as_view, restriction_for
from dsrflow.stores.team_store import staff_names
from policy.model import Policy
from policy.systems import dataset_words
from schemas.clock_start import clock_waits_for_verification
from schemas.requests import RequestStatus, denial_reasons
from schemas.vocabulary import LetterPurpose
from schemas.workflow import PENDING_UNREACHED
from workflows.complaint_progress import TOLD_BY_HAND, not_a_complaint

TEAM_DONE = {"assigned": "Assignment saved.", "unassigned": "The request is assigned to nobody now."}
# Told in the notes section, beside the form (api/console/team.py comes back there): in the team
# panel at the top of the page, a refused note ("write the note first") was out of sight.
NOTE_DONE = "Note added (staff only; never sent to the subject)."


def _names(policy: Policy, system_labels: dict[str, str], legal_claims_holds: list[dict[str, Any]]) -> dict[str, Any]:
    """Systems, datasets and holds by the policy's words (the Holds and deferred-erasure sections,
    the package line showed `billing/invoices`, `be_accounting` and a legal hold's id): a system
    by its label in the plan the request ran under, else in the policy in force, as the Systems
    table names it; a statutory hold by its label, a legal-claims hold by its reason."""
    reasons = {str(h["id"]): h["reason"] for h in legal_claims_holds}

    def hold_name(ref: str) -> str:
        statute = policy.statutory_holds.get(ref)
        if statute is not None:
            return statute.label
        return f"legal-claims hold ({reasons[ref]})" if ref in reasons else "legal-claims hold"

    return {"system_labels": system_labels,
            "dataset_label": lambda system, dataset: dataset_words(policy.systems, system, dataset),
            "hold_name": hold_name}


def _letters(pack: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(letters to the subject, alerts to staff): staff alerts are not letters the subject got."""
    to_subject = [lt for lt in pack["letters"] if lt["purpose"] != LetterPurpose.staff_alert]
    return to_subject, [lt for lt in pack["letters"] if lt["purpose"] == LetterPurpose.staff_alert]


def _acknowledgement(deadlines: dict[str, Any]) -> dict[str, Any] | None:
    """Where the law sets a day to acknowledge by (the CCPA's, a UK complaint's), the day the
    acknowledgement went (the pack's, on the controller's calendar) and the days late."""
    due, sent = deadlines["acknowledge_by"], deadlines["acknowledged_on"]
    if due is None:
        return None
    return {"due_by": due, "sent_on": sent, "late_by": max((sent - due).days, 0) if sent else None}


async def request_context(state: AppState, today: date, request_id: str, staff: Staff) -> dict[str, Any]:
    # The workflow first, then the database: whatever the workflow has done by the time it answers
    # is committed, so the timeline is never older than the status. (The other way round, a query
    # answered just after the request closed showed "completed" over the timeline from before, and
    # a closed request's page polls only every 30 s.)
    live, engine_away = await live_or_engine_away(state, request_id)
    pack = await assemble_evidence(await state.db(), request_id, secret=load_secret_key(state.settings))
    if pack is None:
        raise Problem(404, "Request not found", f"There is no request {request_id}.")
    row, deadlines = pack["request"], pack["deadlines"]
    status = live.status if live else RequestStatus(row["status"])
    due = (live.current_due_date if live and live.current_due_date else deadlines["current_due_date"])
    extended = live.extended if live else deadlines["extended"]
    waits = clock_waits_for_verification(row["regime"], status, appeal=bool((row["details"] or {}).get("appeal_of")))
    staff_language = state.policy.policy.languages.staff.value
    policy = state.policy.in_language(staff_language)
    labels = policy_system_labels(state)
    tasks = task_rows(pack, live, labels)
    restriction = as_view(await restriction_for(await state.db(), request_id))
    # Its workflow ended with the request open (the start sweep's flag): the panel above the live
    # region says so (console/_resume.html), and no action is offered.
    ended = await ended_flag(await state.db(), request_id)
    # An open request whose workflow did not answer within the query's patience (no worker
    # running, or one too busy, or its code failing): the page shows the stored request, and says so.
    unanswered = live is None and not status.is_closed and ended is None
    names = await staff_names(await state.db())
    legal_claims_holds = pack["holds"]["legal_claims_holds"] if may_read(staff.has_role, LEGAL_CLAIMS_HOLDS) else []
    letters, alerts = _letters(pack)
    alerts = readable_letters(partial(may_read, staff.has_role), alerts)
    system_labels = {**labels, **{t["system"]: t["label"] for t in tasks}}  # the plan's, else the policy's
    return {
        # The words of its law: "delete", "correction" under the CCPA (`words_for`).
        **words_for(row["regime"]), "recipients": await planned_recipients(await state.db(), pack),
        "who": lambda actor: actor_name(actor, names), **_names(policy, system_labels, legal_claims_holds),
        # A request appealing a refused one (VCDPA, CTDPA, CPA) links to it by its reference.
        "appeal_of": (row["details"] or {}).get("appeal_of"), "short_reference": short_reference,
        "letters": letters, "staff_alerts": alerts, "reference": short_reference(request_id),
        # A UK complaint's reasons, for who decides it (compliance deny or approve, as on an appeal);
        # the evidence pack, compliance's too, keeps them.
        "complaint_reasons": row["complaint_reasons"] if may_read(staff.has_role, COMPLAINT_REASONS) else None,
        # Its times in the timezone its deadline days are counted in (its policy version's), as its evidence pack.
        "controller_timezone": deadlines["basis"]["timezone"],
        "acknowledgement": _acknowledgement(deadlines),
        "pack": pack, "r": row, "live": live, "status": status, "due": due, "extended": extended,
        "cut_short": cut_short_systems(pack["results"]),  # an erasure a hold cut short: as the Holds section says
        # Who vouched for the subject, by name; they may not approve the request too (workflows/approval.py).
        "attested_by": actor_name(pack["verification"]["attested_by"] or "", names),
        "attested_by_you": pack["verification"]["attested_by"] == staff.actor,
        "language_names": LANGUAGE_NAMES,
        # The language of the subject's letters, named in the staff's, where it is another: what
        # staff write for the subject (a reason, an explanation) goes into the letter as written.
        "letter_language": (language_name(row["language"], staff_language)
                            if row["language"] and row["language"] != staff_language else None),
        "extension_reason": (live.extension_reason if live else None)
        or (deadlines["extension"] or {}).get("reason"),
        "badge": days_left_badge((due - today).days if due else None, status, clock_waits=waits), "tasks": tasks,
        # What the REST API would not show this role, the page does not show either.
        "timeline": ([(e, describe_event(e, names, system_labels, language=staff_language, lifted_again=again,
                                         timezone=deadlines["basis"]["timezone"], regime=row["regime"], own_systems=own),
                       actor_name(e["actor"], names, system_labels))
                      for again in [lifted_again(pack["audit"]["events"])]
                      for own in [own_systems(pack["holds"]["deferred_erasures"])] for e in reversed(pack["audit"]["events"])]
                     if may_read(staff.has_role, TIMELINE) else None),
        "legal_claims_holds": legal_claims_holds,
        # A record kept under a legal-claims hold is kept until the hold's release, not its review date.
        "hold_released": {h["id"]: h["released_at"] for h in legal_claims_holds if h.get("released_at")},
        # Below compliance, cancelling records the subject's own withdrawal only (a refusal is compliance's).
        "may_refuse": staff.has_role(REFUSING_ROLE),
        "owed_under_way": owed_under_way,
        "actions": allowed_actions(staff.has_role, Situation(
            status=status, extended=extended, overdue=bool(live and live.overdue),
            awaiting_decision=bool(live and live.awaiting_decision),
            needs_attention=any(t["status"] == "needs_attention" for t in tasks),
            unreached=any(t.get("external_id") == PENDING_UNREACHED and t["status"] == "pending" for t in tasks),
            failed_step=live.trouble if live else None,
            # Unknown until registered (the workflow refuses until then, with its reason).
            extensible=deadlines["due_date"] is None or deadlines["extended_due_date"] != deadlines["due_date"],
            restriction=restriction["status"] if restriction else None,
            deciding=deciding(live), stopped=ended is not None, clock_waits=waits,
            codes_sent=live.verification.round if live and live.verification else 0,
            complaint=not (not_a_complaint(row["regime"], (row["details"] or {}).get("appeal_of")) or (live and live.approval)))),
        # The progress letters sent by hand so far: the tell-progress form's one-time key (once_from_form).
        "told_by_hand": sum(e["event_type"] == TOLD_BY_HAND for e in pack["audit"]["events"]),
        "workflow_ended": ended,
        "unanswered": unanswered,
        # ... and why, where the engine says: its pending step fails at every try (how many tries so
        # far: its code fails), or it was sealed with a key this deployment no longer holds; or the
        # engine itself is away, which nothing can be asked of (the page answers within the API
        # client's short retries, not three times them).
        "failing": ((NotAnswering(engine_away=True) if engine_away else await workflow_failing(state, request_id))
                    if unanswered else None),
        "restriction": restriction,
        "denial_reasons": denial_reasons(row["regime"]),  # the grounds its law has
        "temporal_link": (temporal_ui_link(state.settings, request_id)
                          if may_read(staff.has_role, WORKFLOW_HISTORY) else None),
    }


async def panels_context(state: AppState, request_id: str, staff: Staff, context: dict[str, Any],
                         params: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The page's panels outside the live region (the team, notes, deferred erasures, a stopped
    workflow's resume, an accuracy dispute, lifts by hand), with the outcome or refusal of the
    last press each came back with (`params`, the page's query: signed, api/console/refusals.py);
    none after an action's own post (api/console/request_actions.py)."""
    shown = params or {}
    outcome = partial(shown_outcome, state.settings, request_id, params=shown)

    def refusal(name: str) -> str | None:
        return shown_refusal(state.settings, name, shown)

    return {**await team_context(await state.db(), request_id, staff),
            "team_done": TEAM_DONE.get(outcome("team_done") or ""), "team_error": refusal("team_error"),
            "note_done": NOTE_DONE if outcome("note_done") else None, "note_error": refusal("note_error"),
            **await deferred_context(state, request_id, staff, outcome("deferred_done"), refusal("deferred_error")),
            **resume_context(staff, outcome("resume_done"), refusal("resume_error")),
            **dispute_context(staff, context, outcome("dispute_done"), refusal("dispute_error")),
            **await lifts_by_hand_context(state, request_id, staff, outcome("lift_done"), refusal("lift_error"))}


JUST_CLOSED = timedelta(minutes=2)


def told(action: StaffAction, context: dict[str, Any]) -> str:
    live = context["live"]
    return action.told(live.trouble, live.owed) if live else action.done


def live_part(request: Request, request_id: str, context: dict[str, Any], notice: dict[str, Any] | None = None):
    # A closed request hardly changes any more (a download, a late callback): poll it gently; a
    # completed restriction still goes into force and is lifted; so is one closed part-way, once on
    # record (workflows/restriction_lifecycle.py).
    restriction = context["restriction"]
    in_hand = (context["r"]["type"] == "restriction"
               and (restriction["status"] != "lifted" if restriction is not None
                    else context["status"] == RequestStatus.completed))
    # ... and a request closed a moment ago (its letter is on its way), or whose denial or
    # cancellation still owes a step (workflows/owed_steps.py).
    closed_at = context["r"]["closed_at"]
    in_hand = (in_hand or bool(context["live"] and (context["live"].trouble or context["live"].owed))
               or (closed_at is not None and datetime.now(UTC) - closed_at < JUST_CLOSED))
    every = "30s" if context["status"].is_closed and not in_hand else "3s"
    return live_region(request, "console/_request_live.html", context, notice=notice,
                       poll_url=f"/console/requests/{request_id}/live", region_id="live", every=every)
