"""The console's request page: the request and its deadlines, each system's task, what holds
kept, the timeline of events, every letter sent (rendered), and the actions the signed-in role
may take now. The live part of the page polls itself every few seconds and changes as the
workflow moves on; actions post through htmx and swap it in place (without JavaScript, a form
posts and the page comes back).

Actions are those of api/staff_actions.py, run like the REST API runs them (api/service.py
`run_update`): the workflow decides, and its refusal is shown beside the form.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.auth import Staff, require_console_role
from api.console.accuracy_disputes import dispute_context
from api.console.deferred import deferred_context
from api.console.lifts_by_hand import lifts_by_hand_context
from api.console.refusals import outcome_params, shown_outcome, shown_refusal
from api.console.request_resume import resume_context
from api.console.team import team_context
from api.console.view import (
    LANGUAGE_NAMES,
    allowed_actions,
    days_in_words,
    days_left_badge,
    describe_event,
    live_region,
    policy_system_labels,
    received_in,
    temporal_ui_link,
)
from api.deps import State, Today
from api.forms import read_form
from api.page_language import page_language
from api.pages import problem_pages, render
from api.problems import Problem, field_errors
from api.read_models.actors import actor_name
from api.read_models.event_lines import lifted_again
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
from api.read_models.subject_requests import LIMIT as OTHER_REQUESTS_LIMIT
from api.read_models.subject_requests import other_requests
from api.service import NotAnswering, live_or_engine_away, live_state, require_step_shown, run_update, workflow_failing
from api.staff_actions import (
    REFUSING_ROLE,
    STAFF_ACTIONS,
    Situation,
    StaffAction,
    deciding,
    owed_under_way,
)
from api.staff_bodies import resent_since
from api.state import AppState
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.references import short_reference
from dsrflow.domain.request_resume import ended_flag
from dsrflow.i18n import language_name
from dsrflow.stores.requests_store import get_request
from dsrflow.stores.restrictions_store import as_view, restriction_for
from dsrflow.stores.team_store import request_by_reference, staff_names
from policy.model import Policy
from policy.systems import dataset_words
from schemas.clock_start import clock_waits_for_verification
from schemas.requests import RequestStatus, denial_reasons
from schemas.vocabulary import LetterPurpose
from schemas.workflow import PENDING_UNREACHED
from workflows.complaint_progress import TOLD_BY_HAND, not_a_complaint

router = APIRouter(prefix="/console/requests", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))
TEAM_DONE = {"assigned": "Assignment saved.", "unassigned": "The request is assigned to nobody now."}
# Told in the notes section, beside the form (api/console/team.py comes back there): in the team
# panel at the top of the page, a refused note ("write the note first") was out of sight.
NOTE_DONE = "Note added (staff only; never sent to the subject)."
def _package_reads(pack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the access package took from each system, once it is built (its audit event): an
    access request has no task per system, the package reads them all at once."""
    built = next((e["data"] or {} for e in pack["audit"]["events"] if e["event_type"] == "package.built"), None)
    if built is None:
        return {}
    reads: dict[str, dict[str, Any]] = {
        s: {"status": "read into the package", "found": n} for s, n in (built.get("systems") or {}).items()}
    for system, files in (built.get("processor_files") or {}).items():
        reads[system] = {"status": "export received", "found": files, "message": f"{files} file(s) from the processor"}
    for system, reason in (built.get("missing") or {}).items():
        reads[system] = {"status": "no export", "message": str(reason).replace("_", " ")}
    return reads


def _tasks(pack: dict[str, Any], live, labels: dict[str, str]) -> list[dict[str, Any]]:
    """Every planned system with its latest result: the workflow's live one, else the stored one,
    else what the package read from it; "waiting" only while nothing has been asked of it."""
    stored = {t["system"]: t for t in pack["results"]}
    current = {r.system: _live(r, stored.get(r.system)) for r in live.results} if live else {}
    # What the plan asks of each system and the Art. 19 recipient it tells (a stored result does
    # not keep the recipient), shown before any result.
    planned = {t["system"]: {"label": t["label"], "action": t["action"], "recipient": t.get("recipient")}
               for t in (pack["plan"] or {}).get("tasks", [])}
    systems = list(planned) + sorted((set(stored) | set(current)) - set(planned))
    reads = _package_reads(pack)
    # A system the built package did not name held nothing for the subject.
    nothing = {"status": "read into the package", "found": 0} if reads else {}
    # A result for a system the plan does not name (its plan not yet stored, a plan of an older
    # shape) tells no recipient the page could name: the page showed a 500 instead.
    return [{"label": labels.get(s, s), "status": "waiting", "system": s, "recipient": None, **planned.get(s, {}),
             **reads.get(s, nothing), **stored.get(s, {}), **current.get(s, {})} for s in systems]


def _live(result: Any, stored: dict[str, Any] | None) -> dict[str, Any]:
    """The workflow's live result of a task, with the note on record of the same attempt: the request's
    workflow knows a task running on its own (a child workflow) as pending only, while the task
    records why it waits (a SaaS down, tried again by itself; a processor's e-mail not yet sent)."""
    shown = result.model_dump()
    if (shown["message"] is None and stored and stored.get("message")
            and (stored.get("status"), stored.get("attempt")) == (shown["status"], shown["attempt"])):
        shown["message"] = stored["message"]
    return shown


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


async def _context(state: AppState, today: date, request_id: str, staff: Staff) -> dict[str, Any]:
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
    tasks = _tasks(pack, live, labels)
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
                                         timezone=deadlines["basis"]["timezone"], regime=row["regime"]), actor_name(e["actor"], names, system_labels))
                      for again in [lifted_again(pack["audit"]["events"])] for e in reversed(pack["audit"]["events"])]
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


async def _subject_context(state: AppState, context: dict[str, Any]) -> dict[str, Any]:
    """The subject's other requests: on the page itself, not in the live region that polls."""
    r, pool = context["r"], await state.db()
    others = await other_requests(pool, r["id"], r["subject"]["email"], r["subject"]["customer_id"],
                                  load_secret_key(state.settings))
    zones, received_on = await received_in(pool, [o.id for o in others])
    return {"other_requests": others, "received_in": zones, "received_on": received_on,
            "other_requests_limit": OTHER_REQUESTS_LIMIT}


JUST_CLOSED = timedelta(minutes=2)


def _told(action: StaffAction, context: dict[str, Any]) -> str:
    live = context["live"]
    return action.told(live.trouble, live.owed) if live else action.done


def _region(request: Request, request_id: str, context: dict[str, Any], notice: dict[str, Any] | None = None):
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


@router.get("/{request_id}", response_class=HTMLResponse)
async def request_page(staff: Annotated[Staff, require_console_role("agent")], request: Request, request_id: str,
                       state: State, today: Today) -> Response:
    """The request page; a short reference (or the workflow id) typed into the address leads here
    under the request's id."""
    pool = await state.db()
    found = await request_by_reference(pool, request_id[:100])
    if found is not None and found != request_id:
        return RedirectResponse(f"/console/requests/{found}", status_code=303)
    context = await _context(state, today, request_id, staff)
    # Outcomes and refusals come back in the address, signed (outcomes for this request): another's
    # link shows none (refusals.py).
    params = request.query_params
    outcome = partial(shown_outcome, state.settings, request_id, params=params)
    done = outcome("done")
    notice = {"flash": _told(STAFF_ACTIONS[done], context)} if done in STAFF_ACTIONS else None
    team = {**await team_context(pool, request_id, staff), "team_done": TEAM_DONE.get(outcome("team_done") or ""),
            "team_error": shown_refusal(state.settings, "team_error", params),
            "note_done": NOTE_DONE if outcome("note_done") else None,
            "note_error": shown_refusal(state.settings, "note_error", params),
            **await deferred_context(state, request_id, staff, outcome("deferred_done"),
                                     shown_refusal(state.settings, "deferred_error", params)),
            **resume_context(staff, outcome("resume_done"), shown_refusal(state.settings, "resume_error", params)),
            **dispute_context(staff, context, outcome("dispute_done"),
                              shown_refusal(state.settings, "dispute_error", params)),
            **await lifts_by_hand_context(state, request_id, staff, outcome("lift_done"),
                                          shown_refusal(state.settings, "lift_error", params))}
    return render(request, "console/request.html", {
        **context, **team, **await _subject_context(state, context),
        "live_region": _region(request, request_id, context, notice).html})


@router.get("/{request_id}/live", response_class=HTMLResponse)
async def request_live(staff: Annotated[Staff, require_console_role("agent")], request: Request, request_id: str,
                       state: State, today: Today) -> Response:
    """The live part of the request page (204 while nothing changed since version `v`)."""
    return _region(request, request_id, await _context(state, today, request_id, staff)).response(request)


async def _run(state: AppState, request_id: str, action: StaffAction | None, form: FormData, staff: Staff,
               ) -> Problem | None:
    """Run the action; None once the workflow accepted it, else why not (a bad field, or the
    workflow's own reason)."""
    assert action is not None  # an unknown action is refused before it runs
    try:
        body = action.body_from_form(form)
        if refused := action.refusal_for(body, staff.has_role, staff.role):
            return Problem(403, "Forbidden", refused)
        answers_step, step = action.step_answered(body)
        if answers_step:  # the form names the step its page showed (a stale page must not answer another)
            await require_step_shown(state, request_id, step)
        # The form names the round of codes its page showed: one sent since is not followed by another;
        # nor is one past the most a request is sent (api/staff_bodies.py CODES_MAX).
        if action.sends_codes() and (
                resent := resent_since(action.round_shown(body), await live_state(state, request_id))):
            return resent
        if unfit := action.unfit_for(await get_request(await state.db(), request_id), body):
            return unfit
        await run_update(state, request_id, action.update,
                         action.workflow_input(body, staff.actor, action.once_from_form(form, staff.actor)))
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        return Problem(422, "Invalid", "; ".join(f"{e['field']}: {e['message']}" for e in errors))
    except Problem as problem:
        return problem
    return None


@router.post("/{request_id}/{action}", response_class=HTMLResponse)
async def act(staff: Annotated[Staff, require_console_role("agent")], request: Request, request_id: str, action: str,
              state: State, today: Today) -> Response:
    """Run one action of api/staff_actions.py; the outcome, or why it was refused (an unknown
    action, a role too low, a bad field, the workflow's reason), shows on the request page. With
    htmx only the live region comes back: a whole page would nest inside it."""
    spec = STAFF_ACTIONS.get(action)
    refusal = (Problem(404, "No such action", f"There is no action {action!r}.") if spec is None
               else Problem(403, "Forbidden", f"{action} needs the {spec.role} role; you are {staff.role}")
               if not staff.has_role(spec.role) else None)
    if await get_request(await state.db(), request_id) is None:
        raise refusal or Problem(404, "Request not found", f"There is no request {request_id}.")
    form = await read_form(request)
    refused = refusal or await _run(state, request_id, spec, form, staff)
    htmx = bool(request.headers.get("hx-request"))
    if refused is None and not htmx:
        done = urlencode(outcome_params(state.settings, request_id, "done", action))
        return RedirectResponse(f"/console/requests/{request_id}?{done}", status_code=303)
    context = await _context(state, today, request_id, staff)
    if refused is None:
        assert spec is not None  # no refusal: the action exists
        notice = {"flash": _told(spec, context)}
    else:
        notice = {"error": days_in_words(refused.detail or refused.title, page_language(request)),
                  "failed_action": action}
    region = _region(request, request_id, context, {**notice, "values": dict(form.items())})
    status = refused.status if refused else 200
    if htmx:
        return region.response(request, status_code=status)
    return render(request, "console/request.html", {
        **context, **await team_context(await state.db(), request_id, staff), **await _subject_context(state, context),
        **await deferred_context(state, request_id, staff, None, None),
        **resume_context(staff, None, None), **dispute_context(staff, context, None, None),
        **await lifts_by_hand_context(state, request_id, staff, None, None), "live_region": region.html},
        status_code=status)
