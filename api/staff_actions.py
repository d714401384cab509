"""The staff actions on a running request, in one table: the role each needs, the workflow update
it runs, what the caller sends (a JSON body on the REST API, a form on the console) and the
update's input built from it, what staff are told once it is done, and when it makes sense.

The REST endpoints (api/rest/staff_requests.py), the console's `act` route (api/console/request_actions.py) and the
console's choice of forms to show (api/console/view.py `allowed_actions`) all read this table, so
an action the console offers is one it can run, with the role the API asks for. What staff may
read is api/read_models/staff_reach.py's `READABLE_BY`, the same way. What each action's caller
sends, and what the API checks in it first, is api/staff_bodies.py; what staff do beside the
workflow's updates (team work, deferred erasures, resuming a request) is api/staff_writes.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.datastructures import FormData

from api.problems import Problem
from api.staff_bodies import (
    STEP_KEY,
    ApproveBody,
    CancelBody,
    DecisionBody,
    DenyBody,
    ExtendBody,
    LiftBody,
    ProgressBody,
    ResendBody,
    ResolveBody,
    RetryStepBody,
    RoundShown,
    SkipBody,
    StaffBody,
    StepAnswer,
    TaskAnswer,
    TaskBody,
    codes_left,
)
from dsrflow.domain.deadlines import reconsiders
from schemas.progress_note import TellProgressInput
from schemas.requests import RequestStatus
from schemas.restrictions import LiftRestrictionInput
from schemas.staff_answers import ResolveTaskInput, RetryTaskInput
from schemas.steps import OWED_TROUBLE, RetryStepInput, SkipStepInput, StepTrouble
from schemas.workflow import (
    ApproveInput,
    CancelInput,
    DenyInput,
    ExtendInput,
    ObjectionDecision,
    RequestState,
    ResendInput,
)
from workflows.complaint_progress import closed_complaint, not_a_complaint
from workflows.dsr import DataSubjectRequestWorkflow as Workflow

# Refusing a request (Art. 12(4)), outright or by closing it unanswered, is compliance's decision.
REFUSING_ROLE = "compliance"

@dataclass(frozen=True)
class Situation:
    """What decides which actions make sense on an open request now."""

    status: RequestStatus
    extended: bool
    overdue: bool
    awaiting_decision: bool  # an objection waits for compliance's decision
    needs_attention: bool  # some system's task needs staff
    # Some system's task waits on its unreachable SaaS, tried again by itself: it may be resolved
    # (done by hand meanwhile), not retried (schemas/workflow.py `waits_unreached`).
    unreached: bool = False
    failed_step: StepTrouble | None = None  # a step of the request's own that failed
    extensible: bool = True  # the request's law allows an extension (the LGPD does not)
    clock_waits: bool = False  # its month has not started (schemas/clock_start.py): no extension
    restriction: str | None = None  # a restriction's phase: active | lifting | lifted
    # A decision is taken and not yet on record: an approval (or one not yet carried out), or an
    # objection's decision. The workflow refuses a second approval, a denial, a cancellation and
    # an extension until then (workflows/refusals.py).
    deciding: bool = False
    # Its workflow ended while it is open (dsrflow/domain/request_resume.py): no action is taken
    # until compliance resumes it, so none is offered.
    stopped: bool = False
    codes_sent: int = 0  # its verification's round: past CODES_MAX no new code is offered
    complaint: bool = False  # a UK complaint to us (DPA 2018 s. 164A), not yet approved


@dataclass(frozen=True)
class Stricter:
    """A higher role for the bodies of an action that do more than its lowest role may."""

    applies: Callable[[BaseModel | None], bool]
    role: str
    because: str  # what such a body does, for the refusal


@dataclass(frozen=True)
class StaffAction:
    name: str
    role: str  # the lowest role that may take it
    update: Any  # the workflow update it runs
    input: type[BaseModel]  # the update's input: the body's fields and the actor
    body: type[BaseModel] | None  # what the caller sends; None: nothing
    done: str  # what staff are told once the workflow accepted it
    available: Callable[[Situation], bool]  # when it makes sense; the workflow has the last word
    description: str  # for the API's documentation
    body_required: bool = True
    after_close: bool = False  # may be offered on a closed request (a completed restriction's)
    stricter: Stricter | None = None  # some bodies need a higher role than `role`
    # What staff are told instead of `done` when the decision took effect but a step it owes
    # (its record, its letter) failed and waits for them (workflows/owed_steps.py).
    untold: str | None = None
    untold_by: str = OWED_TROUBLE  # the key prefix of the troubles that mean so ("": any)
    # ... and what it did, told with the steps it still owes when they are under way (the
    # workflow answers after ANSWER_WITHIN, workflows/owed_steps.py: the database or the relay is slow).
    underway: str | None = None
    # A press's one-time key (the console form's `told`, the API's `Idempotency-Key` header) goes
    # into the update's input as `once`: the same key again takes no second effect.
    keyed: bool = False
    # Why the action (with this body) does not apply to the stored request (a Problem: 422 not
    # for such a request, 409 not any more), or None; the workflow checks too.
    unfit: Callable[[Mapping[str, Any], BaseModel | None], Problem | None] | None = None

    def told(self, trouble: StepTrouble | None, owed: list[str] | None = None) -> str:
        """What staff are told once the workflow accepted it, given the request's failed step and
        the steps its decisions still owe."""
        failed = trouble is not None and trouble.key.startswith(self.untold_by) and trouble.answered_by is None
        if failed and self.untold:
            return self.untold
        return f"{self.underway}; {owed_under_way(owed)}." if owed and self.underway else self.done

    def offered(self, situation: Situation) -> bool:
        return (not situation.stopped and (self.after_close or not situation.status.is_closed)
                and self.available(situation))

    def refusal_for(self, body: BaseModel | None, has_role: Callable[[str], bool], role: str) -> str | None:
        """Why a member of staff with `role` may not send this body, or None: the REST endpoint and
        the console check it once the body is read (the route itself checks `role`)."""
        if self.stricter is not None and self.stricter.applies(body) and not has_role(self.stricter.role):
            return f"{self.stricter.because}: it needs the {self.stricter.role} role; you are {role}"
        return None

    def workflow_input(self, body: BaseModel | None, actor: str, once: str | None = None) -> BaseModel:
        """The update's input: the body's fields the input has (a resend's `round` is the API's), the
        actor, and a keyed action's one-time key."""
        said = body.model_dump() if body else {}
        keyed = {"once": once} if self.keyed else {}
        return self.input(**{name: value for name, value in said.items() if name in self.input.model_fields},
                          actor=actor, **keyed)

    def unfit_for(self, row: Mapping[str, Any] | None, body: BaseModel | None) -> Problem | None:
        """Why the action, with `body`, does not apply to the stored request (`unfit`), or None."""
        return self.unfit(row, body) if self.unfit is not None and row is not None else None

    def once_from_form(self, form: FormData, actor: str) -> str | None:
        """A keyed action's one-time key from its console form: the count of such presses its page
        showed (`told`), for this member of staff. A double press or a resubmitted page sends the
        same; the page after the first shows the next count. None without a well-formed count."""
        told = str(form.get("told", "")).strip()
        return f"console:{actor}:{told}" if self.keyed and told.isdigit() and len(told) < 6 else None

    def round_shown(self, body: BaseModel | None) -> int | None:
        """The round of codes a resend's body names (`resent_since`), None for any other action."""
        return body.round if isinstance(body, RoundShown) else None

    def sends_codes(self) -> bool:
        """Whether it sends the subject a code (`resent_since` decides first, with or without a body)."""
        return self.body is not None and issubclass(self.body, RoundShown)

    def step_answered(self, body: BaseModel | None) -> tuple[bool, str | None]:
        """(whether this action answers a failed step, the `trouble.key` its body names)."""
        return self.body is not None and issubclass(self.body, StepAnswer), getattr(body, STEP_KEY, None)

    def body_from_form(self, form: FormData) -> BaseModel | None:
        """The body from a console form: its fields by name, blanks left out so that a missing
        value is named as such (raises pydantic's ValidationError); a task's answer with the
        attempt shown for its system; refused (Problem 409) without what its page showed (`unshown`)."""
        if self.body is None:
            return None
        values = {name: str(form[name]).strip() for name in self.body.model_fields if name in form}
        if issubclass(self.body, TaskAnswer):
            values = self.body.shown_on(form, values)
        body = self.body.model_validate({name: value for name, value in values.items() if value})
        if isinstance(body, StaffBody) and (unshown := body.unshown()):
            raise Problem(409, "Refused", unshown)
        return body



# What a decision's owed steps are to staff (workflows/owed_steps.py), and who must answer first.
_OWED = {"transition": ("its record", "the database"), "apply_extension": ("its record", "the database"),
         "record_event": ("its record", "the database"), "announce_restriction_lift": ("its record", "the database"),
         "record_task_result": ("its record", "the database"),
         "settle_verification_round": ("the check of whether a new code went out", "the mail relay"),
         "send_letter": ("the letter to the subject", "the mail relay")}


def owed_under_way(owed: list[str]) -> str:
    """E.g. "its record and the letter to the subject are under way (the database or the mail relay
    has not answered yet; ...)", for the steps a decision still owes, in order."""
    steps = list(dict.fromkeys(_OWED.get(step, (step.replace("_", " "), "a service"))[0] for step in owed))
    waits = list(dict.fromkeys(_OWED.get(step, ("", "a service"))[1] for step in owed))
    it, are = ("they", "are") if len(steps) > 1 else ("it", "is")
    return (f"{' and '.join(steps)} {are} under way ({' or '.join(waits)} has not answered yet; "
            f"{it} {are} tried again, and this page shows when {it} {are} done)")


def deciding(live: RequestState | None) -> bool:
    """Whether the request's live state holds a decision taken and not yet on record (Situation)."""
    if live is None or live.status.is_closed:
        return False
    approving = live.approval is not None and live.status == RequestStatus.awaiting_approval
    return approving or (live.decision is not None and not live.decision_on_record)


def _not_deciding(situation: Situation) -> bool:
    return not situation.deciding


def _carrying_on(situation: Situation) -> bool:
    """Open, or a completed restriction whose lift is under way (its tasks and steps)."""
    return not situation.status.is_closed or situation.restriction == "lifting"


def _step_waits(situation: Situation) -> bool:
    """A failed step waits for staff: the workflow shows one only then, on an open request, a
    lifting restriction, or a closed request whose denial or cancellation owes its letter."""
    return situation.failed_step is not None and situation.failed_step.answered_by is None


def _no_progress_to_tell(row: Mapping[str, Any]) -> Problem | None:
    """No UK complaint (422), or one closed (409: its workflow may have ended, and says nothing then)."""
    if why := not_a_complaint(row["regime"], (row["details"] or {}).get("appeal_of")):
        return Problem(422, "Not a UK complaint", why)
    if (status := RequestStatus(row["status"])).is_closed:
        return Problem(409, "Refused", closed_complaint(status))
    return None


def approval_unfit(row: Mapping[str, Any], body: BaseModel | None) -> Problem | None:
    """Why an approval's `explanation` is refused (422 naming it), or None. Granting an appeal (a
    UK complaint) is a decision the subject is told the reasons for (Va. Code § 59.1-577(C), Conn.
    Gen. Stat. § 42-518(d), C.R.S. § 6-1-1306(3)(a); DPA 2018 s. 164A): its response letter quotes
    them, so they are required. Any other request's letter quotes none, so one sent there is
    refused rather than dropped: the caller would believe the subject reads it."""
    explanation = getattr(body, "explanation", None)
    what = reconsiders(row["regime"]) or "appeal"
    if (row["details"] or {}).get("appeal_of"):
        if explanation:
            return None
        why = (f"is required to grant {'a' if what == 'complaint' else 'an'} {what}: the subject's letter says why "
               "you decided so, in your words (the `note` stays with staff)")
    elif explanation is None:
        return None
    else:
        why = ("is only for an appeal or a UK complaint, whose letter gives the subject the reasons; this "
               "request's letter quotes none: keep what staff should know in `note`")
    return Problem(422, "Invalid request", f"explanation: {why}", errors=[{"field": "explanation", "message": why}])


_ACTIONS = [
    StaffAction(
        "extend", "compliance", Workflow.extend, ExtendInput, ExtendBody,
        "Deadline extended; the subject is told the reason and the new date.",
        lambda s: s.extensible and not s.extended and not s.overdue and not s.deciding and not s.clock_waits,
        "Extend the deadline once, before the due date, with the reason sent to the subject (a UK GDPR request "
        "once its subject has verified: its month starts then).",
        untold="Deadline extended, but the subject has not been told yet: see the failed step.",
        underway="Deadline extended"),
    StaffAction(
        "deny", REFUSING_ROLE, Workflow.deny, DenyInput, DenyBody,
        "Request denied; the letter with the reasons and remedies is sent.", _not_deciding,
        "Refuse the request (Art. 12(4)/(5)); the subject gets the reasons and their remedies.",
        untold="Request denied, but the subject has not been sent the letter yet: see the failed step.",
        underway="Request denied"),
    StaffAction(
        "cancel", "agent", Workflow.cancel, CancelInput, CancelBody, "Request cancelled.", _not_deciding,
        "Close the request without answering it, with the reason: the subject is told why, with their "
        "remedies (a refusal: compliance only, as `deny`); or, with `withdrawn_by_subject`, the "
        "subject's own withdrawal is recorded and confirmed (any member of staff).",
        stricter=Stricter(lambda body: not getattr(body, "withdrawn_by_subject", False), REFUSING_ROLE,
                          "a cancellation that is not the subject's own withdrawal refuses the request"),
        untold="Request cancelled, but the subject has not been sent the letter yet: see the failed step.",
        underway="Request cancelled"),
    StaffAction(
        "approve", "compliance", Workflow.approve, ApproveInput, ApproveBody,
        "Release approved; the request goes on now.",
        lambda s: s.status == RequestStatus.awaiting_approval and not s.deciding,
        "Release a request the policy holds for compliance (status `awaiting_approval`): an access or "
        "portability response, with its package link, goes out now (review the package first with "
        "`GET /v1/requests/{id}/package`); a rectification or an attested erasure now reaches the "
        "systems (check the corrections and the identities first). Refuse with `deny` instead.",
        body_required=False, unfit=lambda row, body: approval_unfit(row, body),
        untold="Release approved, but it is not on record yet, and nothing is released before it is: "
               "see the failed step.",
        underway="Release approved; nothing is released before it is on record"),
    StaffAction(
        "resend-verification", "agent", Workflow.resend_verification, ResendInput, ResendBody,
        "A new code and link are sent; the old ones no longer work.",
        lambda s: s.status == RequestStatus.awaiting_verification and codes_left(s.codes_sent),
        "Send the subject a new code and link; the earlier ones stop working and attempts reset. Send the "
        "`verification.round` you read as `round`: a code sent since (a retry, a colleague's) is refused (409), "
        "no second one sent.", body_required=False),
    StaffAction(
        "retry-task", "compliance", Workflow.retry_task, RetryTaskInput, TaskBody, "The task runs again.",
        lambda s: s.needs_attention and _carrying_on(s),
        "Run a system's task again after it needed attention (e.g. once the system is back). Send the task's "
        "`attempt` (as `results` shows it): a task retried or answered since is refused (409), not run again.",
        after_close=True,
        untold="Retry taken, but it is not on record yet, and the task runs again only once it is: "
               "see the failed step.",
        underway="Retry taken; the task runs again once it is on record"),
    StaffAction(
        "resolve-task", "compliance", Workflow.resolve_task, ResolveTaskInput, ResolveBody,
        "The task is recorded as handled.", lambda s: (s.needs_attention or s.unreached) and _carrying_on(s),
        "Record that staff carried out a system's action by other means. Send the task's `attempt` (as "
        "`results` shows it): another attempt failing by then is refused (409), not recorded as done.",
        after_close=True,
        untold="Resolution taken, but it is not on record yet, and the response waits until it is: "
               "see the failed step.",
        underway="Resolution taken; the response waits until it is on record"),
    StaffAction(
        "retry-step", "compliance", Workflow.retry_step, RetryStepInput, RetryStepBody, "The step runs again.",
        _step_waits,
        "Run a failed step of the request again (registration, a letter, the package) once its "
        "cause is fixed; the request's `trouble` says which step failed and why (send its `key` as "
        "`trouble`, so that another step failing by then is not run instead).", body_required=False,
        after_close=True),
    StaffAction(
        "skip-step", "compliance", Workflow.skip_step, SkipStepInput, SkipBody,
        "The step is recorded as done by other means.",
        lambda s: _step_waits(s) and s.failed_step is not None and s.failed_step.skippable,
        "Record that staff did a failed step's work by other means (sent a letter by hand, say); "
        "the request carries on. Registration and planning cannot be skipped. Send the step's "
        "`trouble.key` as `trouble`: another step failing by then is refused (409), not skipped.",
        after_close=True),
    StaffAction(
        "decide-objection", "compliance", Workflow.decide_objection, ObjectionDecision, DecisionBody,
        "Decision recorded.", lambda s: s.awaiting_decision,
        "Decide an objection to legitimate-interest processing: without compelling grounds the "
        "processing stops in every system; with them, the subject is told why it continues.",
        untold="Decision taken, but not yet on record: see the failed step. The systems are told once it is.",
        underway="Decision taken; the systems are told once it is on record"),
    StaffAction(
        "lift-restriction", "compliance", Workflow.lift_restriction, LiftRestrictionInput, LiftBody,
        "The subject has been told; the restriction is being lifted in every system.",
        lambda s: s.restriction == "active",
        "End a restriction of processing (Art. 18) that is in force, with the reason the subject is "
        "told. The letter goes out first (Art. 18(3)); after the policy's `restriction.lift_notice_days` "
        "the lift is carried to every system and the Art. 19 recipients among them. Refused (409) "
        "while the restriction is not in force, or once it is being or has been lifted.",
        after_close=True,
        # While it is lifted, only the lift's steps run: a failed one is the letter or its record.
        untold="Lift taken, but the subject has not been told yet, and nothing is lifted before: "
               "see the failed step.", untold_by="",
        underway="Lift taken; nothing is lifted before the subject is told"),
    StaffAction(
        "tell-progress", "compliance", Workflow.tell_progress, TellProgressInput, ProgressBody,
        "Progress letter sent: the complainant is told where their complaint stands, in your words.",
        lambda s: s.complaint and not s.deciding,
        "Tell a UK complaint's complainant of its progress now (Data Protection Act 2018, s. 164A(5)(b)), with "
        "a `note` the progress letter quotes as written; the automatic progress letters then count from this "
        "one. Send an `Idempotency-Key` header: the same key again sends no second letter (the same key with "
        "another note is refused, 409). Refused (409) once the complaint is decided or closed, and (422) for "
        "a request that is not a UK complaint.",
        untold="Progress letter taken, but not sent yet: see the failed step.",
        underway="Progress letter taken", keyed=True,
        unfit=lambda row, body: _no_progress_to_tell(row)),
]
STAFF_ACTIONS: dict[str, StaffAction] = {action.name: action for action in _ACTIONS}
