"""Contracts between the request workflow, its activities and the API.

Nothing here carries the subject's identities: workflow payloads hold request ids, dates, hashes
and staff-written reasons only (and are encrypted by the payload codec besides).

The inputs of the updates staff send (ExtendInput, DenyInput, ... here; SkipStepInput and
LiftRestrictionInput beside) are also the API's bodies: api/staff_actions.py makes each body from
its input without `actor`, which the API fills in. So their constraints and examples are declared
once, on the input; staff-written text is `FreeText` (line breaks, no other control character).
The identity verification's contracts (the challenge, an attempt and its answer, its part of the
`state`) are in schemas/verification.py.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from schemas.contract import Contract
from schemas.plain_text import FREE_TEXT, FreeText
from schemas.requests import DenialReason, RequestStatus, RequestType
from schemas.steps import StepTrouble
from schemas.verification import VerificationState

# A request's workflow id, or one of its system tasks' (the request id and `-system-action-attempt`).
_REQUEST_WORKFLOW = re.compile(r"dsr-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:-.+)?",
                               re.IGNORECASE)


# The error type of a system action's attempt that stopped at the end of its time slice with part
# of the run done (activities/connectors/http_journal.py): the task workflow starts the next one.
RUN_CONTINUES = "HttpRunContinues"
# The error types of an http system's action that say its service is down for now (connection
# refused or reset, timeouts, 5xx, 429 past its own Retry-After handling: activities/connectors/
# http_client.py), not that a person must look: a task failing with one past its quick retries
# waits and tries again by itself (workflows/system_task.py), pending with PENDING_UNREACHED.
SAAS_OUTAGE_ERRORS = frozenset({"HttpSystemUnavailable", "HttpSystemThrottled"})
PENDING_UNREACHED = "http-unreached"


def workflow_id_for(request_id: str) -> str:
    """Workflow ids derive from request ids only: never personal data."""
    return f"dsr-{request_id}"


def task_workflow_id(request_id: str, system: str, action: str, attempt: int) -> str:
    return f"{workflow_id_for(request_id)}-{system}-{action}-{attempt}"


def request_id_of(workflow_id: str) -> str | None:
    """The request a workflow id belongs to (`workflow_id_for`'s or `task_workflow_id`'s), in
    lower case; None for any other id (a sweep's, a skeleton's, a typo)."""
    found = _REQUEST_WORKFLOW.fullmatch(workflow_id)
    return found.group(1).lower() if found else None


class StartRequest(Contract):
    request_id: str
    policy_version: str
    # The policy's attention_after_minutes, known before the first step runs (requests started
    # before it existed use the default).
    attention_after_minutes: int = 15


class Checkpoints(Contract):
    """UTC instants at which the deadline watch acts for one due date."""

    due_date: date
    warnings: list[tuple[int, datetime]]  # (days before due, when)
    overdue_at: datetime
    # The controller's zone these midnights are in (policy `defaults.timezone`): staff's reminders
    # and a complaint's progress letters keep 9:00 in it across a change of clocks
    # (workflows/step_trouble.py LOCAL_HOUR). None in checkpoints prepared before: 24 h steps.
    timezone: str | None = None


class RequestFacts(Contract):
    request_id: str
    request_type: RequestType
    regime: str
    country: str
    received_at: datetime
    attested: bool
    due_date: date
    extended_due_date: date
    acknowledge_by: date | None
    due: Checkpoints
    extended: Checkpoints
    verification_max_attempts: int
    # Codes the subject may have in all (policy `verification.max_codes`); requests prepared before
    # the cap get the shipped default.
    verification_max_codes: int = 5
    reminder_after_days: int
    expires_after_days: int
    # The policy asks compliance to approve the response (and package) before it goes out.
    # Absent from requests prepared before the approval gate existed: they have none.
    approval_required: bool = False
    # Who attested the subject's identity (a staff actor, e.g. "agent:1a2b3c4d"), who may then not
    # approve the request too (workflows/approval.py). Absent from requests prepared before.
    attested_by: str | None = None
    # A complaint to us (UK GDPR, DPA 2018 s. 164A(5)(b)): the days after its receipt when the
    # complainant is told how it progresses, and again every that many days while it is undecided
    # (policy `remedies.<regime>.appeal.progress_days`; workflows/complaint_progress.py). None: no
    # progress letter (any other request, and complaints prepared before).
    progress_days: int | None = None
    # The id of the refused request an appeal (a complaint) reconsiders (workflows/appeal_claim.py);
    # None: any other request, and appeals prepared before.
    appeal_of: str | None = None
    # An LGPD access request asking for the simplified confirmation at once (Art. 19, I): its letter
    # goes as soon as the identity is verified (workflows/dsr.py). False for requests prepared before.
    simplified_confirmation: bool = False


class ExtendInput(Contract):
    reason: FreeText = Field(min_length=10, max_length=4000,
                             examples=["Request covers six systems and 9 years of records"])
    actor: str = "staff"


class DenyInput(Contract):
    reason_code: DenialReason
    explanation: FreeText = Field(min_length=10, max_length=4000,
                                  examples=["This is the fourth identical request in a month; we answered on 2 March"])
    actor: str = "staff"


class CancelInput(Contract):
    reason: FreeText = Field(min_length=3, max_length=4000, examples=["Subject withdrew the request by phone"],
                             description="sent to the subject")
    withdrawn_by_subject: bool = Field(
        False, description="the subject withdrew the request themselves: recorded as such, and the "
        "subject gets a confirmation instead of a letter with the reasons and their remedies")
    actor: str = "staff"


class ResendInput(Contract):
    actor: str = "staff"


class ApproveInput(Contract):
    """Compliance releases the response (and the access package) for sending. `note` stays with
    staff; `explanation` is an appeal's (a UK complaint's) reasons for granting it, which the
    response letter quotes (VCDPA, CTDPA, CPA; DPA 2018 s. 164A): the API requires it there and
    refuses it elsewhere (api/staff_actions.py `approval_unfit`). None in approvals before it."""

    note: FreeText | None = Field(None, max_length=2000, examples=["Package checked: 4 systems, no third-party data"])
    # FreeText, its bounds checked first (schemas/plain_text.py FREE_TEXT).
    explanation: Annotated[str, StringConstraints(min_length=10, max_length=4000), FREE_TEXT] | None = Field(
        None,
        examples=["Your account was closed on 3 March, so we no longer need the records we kept for its dispute"],
        description="an appeal's or a UK complaint's reasons for the decision, sent to the subject in the "
        "response letter: required for one, refused (422) for any other request")
    actor: str = "staff"


class LetterJob(Contract):
    request_id: str
    purpose: str
    key: str = "1"
    params: dict[str, Any] = Field(default_factory=dict)
    to_staff: bool = False


class LetterReceipt(Contract):
    letter_key: str
    message_id: str
    already_sent: bool


class Transition(Contract):
    request_id: str
    status: RequestStatus
    event_key: str
    actor: str = "workflow"
    data: dict[str, Any] = Field(default_factory=dict)


class EventRecord(Contract):
    request_id: str
    event_type: str
    event_key: str
    actor: str = "workflow"
    data: dict[str, Any] = Field(default_factory=dict)


class ExtensionRecord(Contract):
    request_id: str
    reason: str
    actor: str


# The connector kind of processors without an API: asked by e-mail, even for their export in an
# access or portability package (workflows/processor_exports.py).
ASKED_BY_EMAIL = "manual_email"


# The one task that runs on its closed request by design: a restriction's lift (its request
# completed, or closed part-way with the restriction in force: workflows/restriction_lifecycle.py).
# Every guard that stops a closed request's work (a try after the close, the http run journal, a
# processor's link, the sweep telling a link's answer) lets it through.
RUNS_AFTER_CLOSE = "lift_restriction"


class SystemTask(Contract):
    """One system's part of a plan."""

    system: str
    action: str  # access | erase | rectify | restrict | lift_restriction | object
    connector: str
    label: str
    recipient: str | None = None  # the Art. 19 recipient this system is, if any
    completion_timeout_days: int = 14
    scope: str | None = None  # objection scope


class Plan(Contract):
    request_id: str
    policy_version: str
    request_type: str
    tasks: list[SystemTask] = Field(default_factory=list)


class TaskInput(Contract):
    request_id: str
    policy_version: str
    task: SystemTask
    attempt: int = 1
    external_id: str | None = None
    # The activity stores the result it returns as the system's task record, in the transaction
    # that keeps its outcome, so the workflow needs no bookkeeping step of its own.
    record: bool = False
    # A try after its SaaS could not be reached (workflows/system_task.py `_unreached`): made only
    # while the request is open, since nothing may reach a system for a withdrawn or refused one;
    # a restriction's lift excepted (RUNS_AFTER_CLOSE).
    after_outage: bool = False
    # A poll its task makes on being told its request closed unanswered: the close may not be on
    # record yet, and the poll waits a few seconds for it (activities/told_closed.py).
    told_closed: bool = False


class TaskResult(Contract):
    system: str
    action: str
    status: str  # done | not_found | needs_attention | pending
    found: int = 0
    changed: int = 0
    kept: int = 0
    datasets: dict[str, dict[str, int]] = Field(default_factory=dict)
    external_id: str | None = None
    poll_after_seconds: int | None = None  # an asynchronous processor's expected completion
    message: str | None = None
    attempt: int = 1
    recipient: str | None = None
    # What a legal hold kept: [{system, dataset, records, hold_kind, basis, law, until}]
    kept_records: list[dict[str, Any]] = Field(default_factory=list)
    # A sentence for the subject's letter, e.g. when a processor states the data will be gone.
    note: str | None = None


def dataset_changes(counts: dict[str, int]) -> int:
    """A dataset's records an action changed: its counts but what was found, kept or left (the sql
    connector's `changed`, an http step's effect by its name, `updated` or `deleted`)."""
    return sum(n for k, n in counts.items() if k not in ("found", "kept", "left"))


def records_left(action: str, datasets: dict[str, dict[str, int]] | None) -> int:
    """A correction's records that an earlier erasure kept under a hold and that it left as they
    were (the connectors count them per dataset as `left`, apart from `found`). A task whose every
    record is so left ends `done` with found and changed 0: the records exist, and were not
    corrected; readers say so rather than "not found" (api/read_models/event_words.py)."""
    return sum(c.get("left", 0) for c in (datasets or {}).values()) if action == "rectify" else 0


def waits_unreached(result: TaskResult) -> bool:
    """A task whose SaaS is down, tried again by itself (SAAS_OUTAGE_ERRORS): staff may resolve it
    meanwhile (a change made by hand), not retry it (it is being tried)."""
    return result.status == "pending" and result.external_id == PENDING_UNREACHED


class TaskRecord(Contract):
    request_id: str
    result: TaskResult


# The largest count a task's result keeps (system_tasks' counts are PostgreSQL integers).
TASK_COUNT_MAX = 2**31 - 1


# The processor statuses that settle an asynchronous task; workflows/system_task.py waits on
# through any other.
SETTLING_STATUSES = frozenset({"completed", "done", "cancelled"})
# A task's message when its processor's signed callback says the job is cancelled
# (workflows/system_task.py); on a request closed unanswered it is worded as what is known
# (activities/acted_after_call_off.py `cancelled_as_known`).
PROCESSOR_CANCELLED = "the processor cancelled the request"


class ProcessorUpdate(Contract):
    """A processor's word on an asynchronous task (verified callback or poll)."""

    status: str
    message: str | None = None
    # What a signed OpenDSR callback of a completed request counted (its `results_count`): with
    # it, the task needs no poll of the processor's status to know the outcome.
    results_count: int | None = Field(default=None, ge=0, le=TASK_COUNT_MAX)
    # From the worker's start sweep (dsrflow/domain/processor_answers.py): the audit event that it
    # told the task late. The task records it itself, so a sweep that dies between telling the
    # task and its own record of it leaves the evidence whole (the same key: written once).
    told_late: EventRecord | None = None


class ObjectionDecision(Contract):
    """Compliance's decision on an objection to processing based on legitimate interests
    (Art. 21(1)): stop, unless the controller demonstrates compelling legitimate grounds."""

    compelling_grounds: bool
    explanation: FreeText = Field(min_length=10, max_length=4000,
                                  examples=["Fraud monitoring of this account is required by our card acquirer"])
    actor: str = "staff"


class PackageInfo(Contract):
    package_id: str
    kind: str  # access | portability
    records: int
    size_bytes: int
    systems: dict[str, int] = Field(default_factory=dict)
    # Processors asked by e-mail: files each sent, and those whose export is missing (and why:
    # activities/processor_exports.py MISSING_REASONS).
    processor_files: dict[str, int] = Field(default_factory=dict)
    missing: dict[str, str] = Field(default_factory=dict)
    # Not built: its request was closed unanswered (withdrawn, cancelled, denied) before or while it
    # was (activities/packages.py `_called_off`); the jobs processors had been asked for called off.
    stopped: bool = False


class ExecutionReport(Contract):
    results: list[TaskResult] = Field(default_factory=list)
    package: PackageInfo | None = None


class RequestState(Contract):
    """What the `state` query answers: the request's live state, without personal data."""

    request_id: str
    status: RequestStatus
    request_type: RequestType | None = None
    regime: str | None = None
    received_at: datetime | None = None
    due_date: date | None = None
    extended_due_date: date | None = None
    current_due_date: date | None = None
    acknowledge_by: date | None = None
    extended: bool = False
    extension_reason: str | None = None
    overdue: bool = False
    warnings_sent: list[int] = Field(default_factory=list)
    verification: VerificationState | None = None
    plan: Plan | None = None
    results: list[TaskResult] = Field(default_factory=list)
    package: PackageInfo | None = None
    awaiting_decision: bool = False
    decision: ObjectionDecision | None = None
    # The decision is on record (workflows/owed_steps.py): until then the request is held as it is
    # during an approval's record (workflows/refusals.py).
    decision_on_record: bool = False
    approval_required: bool = False
    approval: ApproveInput | None = None
    closed_reason: str | None = None
    withdrawn_by_subject: bool = False  # cancelled because the subject withdrew the request
    # A step that failed, or kept failing, and waits for staff to retry or skip it.
    trouble: StepTrouble | None = None
    # What a decision taken (or a verification attempt) still owes, in order: its records
    # ("transition", "apply_extension", "record_event") and its letter ("send_letter").
    owed: list[str] = Field(default_factory=list)

    @field_validator("warnings_sent")
    @classmethod
    def _sorted(cls, value: list[int]) -> list[int]:
        return sorted(value, reverse=True)
