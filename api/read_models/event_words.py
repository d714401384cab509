"""The words staff read for the codes the trail records: audit events (the console's timeline and
the evidence pack's tables), verification methods, denial grounds, statuses, letter purposes,
channels, each system's action and its Art. 19 recipient, a failed step, a hold's kind, a country.
One table for both places, so the pack a DPO hands to an authority says what the console says,
and neither shows `status.denied` or `email_code`. The codes stay in the JSON, where tools read
them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from functools import wraps
from typing import Any

from babel import Locale

from activities.citations import citation, regime_name
from activities.letter_outcome import ACTION_WORDS, NOTHING_NEEDED
from api.read_models.event_types import CALL_OFF_WORDS, EVENT_WORDS
from dsrflow.i18n import SOURCE_LANGUAGE, in_law_words, long_date
from schemas.dataset_split import split_datasets
from schemas.workflow import records_left

# How the subject's identity was confirmed (workflows/verification.py records the first two).
_METHOD_WORDS = {
    "email_code": "one-time code from the e-mail to the subject",
    "email_link": "one-time link from the e-mail to the subject",
    "attested": "attested by staff (an authenticated session)",
}

# A denial's ground (schemas/requests.py DenialReason) and the article it rests on under the GDPR.
_GROUND_WORDS: dict[str, tuple[str, str | None]] = {
    "manifestly_unfounded": ("manifestly unfounded", "12(5)"),
    "excessive": ("manifestly excessive (repetitive)", "12(5)"),
    "identity_not_established": ("the subject's identity could not be established", "11(2) and 12(2)"),
    "other": ("another ground, given in the explanation", None),
}

# What an objection is to (schemas/requests.py ObjectionScope), with the article that grants it.
_SCOPE_WORDS: dict[str, tuple[str, str | None]] = {
    "legitimate_interest": ("processing based on the controller's legitimate interests", "21(1)"),
    "direct_marketing": ("direct marketing", "21(2) and (3)"),
    "profiling": ("profiling", "21(1)"),
}

# A restriction's Art. 18(1) grounds (schemas/requests.py RestrictionGround).
_RESTRICTION_WORDS: dict[str, tuple[str, str | None]] = {
    "accuracy_contested": ("accuracy contested", "18(1)(a)"),
    "unlawful_processing": ("unlawful processing, erasure opposed", "18(1)(b)"),
    "needed_for_legal_claims": ("needed by the subject for legal claims", "18(1)(c)"),
    "objection_pending": ("objection pending verification", "18(1)(d)"),
}

_STATUS_WORDS = {"closed_unverified": "closed unverified (identity never confirmed)"}

# How a request reached us (schemas/requests.py Channel) and who opened it (its row's `origin`:
# the subject, staff, or the retention schedule, activities/retention.py).
_CHANNEL_WORDS = {"web": "the web form", "email": "e-mail", "phone": "phone", "post": "post", "api": "the API"}
_ORIGIN_WORDS = {"subject": "the subject", "staff": "staff", "retention": "the retention schedule"}

# What a plan asks of each system (activities/fanout.py ACTIONS, and a restriction's lift).
_ACTION_WORDS = {"access": "read for the package", "erase": "erase", "rectify": "correct", "restrict": "restrict",
                 "lift_restriction": "lift the restriction", "object": "stop the processing objected to"}
# The actions Art. 19 has the controller tell each recipient of (erasure, rectification, restriction,
# and so a restriction's end); an objection or a copy tells no recipient.
_ART19_ACTIONS = {"erase", "rectify", "restrict", "lift_restriction"}

_PURPOSE_WORDS = {
    "verification": "verification code and link",
    "reminder": "verification reminder (a new code)",
    "simplified_confirmation": "simplified confirmation of whether we process the subject's data (LGPD Art. 19, I)",
    "extension": "extension notice",
    "complaint_progress": "progress letter on the complaint",
    "closed_unverified": "closing notice (identity not verified)",
    "restriction_lift": "notice of the restriction's lift",
    "staff_alert": "alert to staff",
}

# What a staff alert was about: its facts' `what` (activities/staff_alert_words.py FACTS), recorded
# with its `letter.sent` (`about`) since the timeline read "alert to staff" of every one alike.
_ALERT_WORDS = {
    "step_failed": "a step of the request failed",
    "deadline": "the request's deadline is near or past",
    "task_stuck": "a system's task needs staff",
    "approval": "the response waits for compliance's approval",
    "objection": "an objection waits for compliance's decision",
    "deferred_failed": "an erasure a hold had deferred failed",
    "workflow_ended": "the request's workflow stopped while the request was open",
    "still_stopped": "the request is still stopped",
    "workflow_failing": "the request's workflow keeps failing",
    "package_unreadable": "the package cannot be read from a system",
    "lift_by_hand": "a lift left a system restricted: lift it by hand",
    "lift_superseded": "a newer restriction holds a system staff were asked to lift: do not lift it",
    "call_off_by_hand": "a processor could not be told to stop: tell it by hand",
    "acted_after_call_off": "a processor carried out a job after cancelling it",
    "call_off_settled": "a processor has since cancelled its job: nobody need tell it by hand",
}


# What each step a workflow supervises does (the activities behind workflows/dsr_steps.py `run_step`).
_STEP_WORDS = {
    "send_letter": "sending a letter", "record_event": "recording an event in the audit trail",
    "transition": "recording the request's new status",
    "prepare_request": "registering the request (its deadlines and its receipt)",
    "plan_request": "planning the work in each system", "apply_extension": "recording the extension",
    "build_package": "building the access package", "issue_verification": "sending a verification code",
    "confirm_at_once": "reading our own systems for the simplified confirmation (LGPD Art. 19, I)",
    "settle_verification_round": "settling a verification e-mail", "settle_skipped_letter": "settling a skipped letter",
    "record_task_result": "recording a system's result", "record_restriction": "recording the restriction in force",
    "announce_restriction_lift": "recording the decision to lift the restriction",
    "record_restriction_lifted": "recording the restriction's lift",
    "run_system_action": "carrying out a system's action", "poll_system_action": "asking a processor how it stands",
    "start_clock_at_verification": "counting the deadline from the day the identity was verified",
    "claim_appeal_decision": "checking that no other appeal of the same refusal is being decided",
}

# Why a processor's export is not in an access package (activities/processor_exports.py MISSING_REASONS).
_MISSING_WORDS = {"not_provided": "the processor did not send it", "not_asked": "the processor was not asked for it"}

# How a request's workflow had ended when the start sweep found it stopped (dsrflow/domain/request_resume.py
# `how_ended`: Temporal's status, lower case), as "it had ...".
_ENDED_WORDS = {"failed": "failed", "terminated": "been terminated", "timed_out": "timed out",
                "canceled": "been cancelled", "completed": "completed", "continued_as_new": "continued as a new run"}

# How dsrflow reaches each system (schemas/vocabulary.py ConnectorKind).
_CONNECTOR_WORDS = {"sql": "directly, in its database", "opendsr": "through the processor's OpenDSR interface",
                    "http": "through its API", "manual_email": "by e-mail to the processor's privacy contact"}

# What a package is (its `kind` is the request's type).
_PACKAGE_WORDS = {"access": "copy of the subject's data (access)",
                  "portability": "the subject's data in a machine-readable format (portability)"}

# The kinds of hold that keep records from an erasure (Art. 17(3)): a law's, or compliance's for a claim.
_HOLD_WORDS = {"statutory": "statutory hold", "legal_claims": "legal-claims hold"}


def _cited(words: str, article: str | None, regime: str | None) -> str:
    cited = citation(regime, article) if article else None
    return f"{words} ({cited})" if cited else words


def method_words(method: str | None) -> str | None:
    return None if method is None else _METHOD_WORDS.get(method, method.replace("_", " "))


def ground_words(ground: str | None, regime: str | None = None) -> str | None:
    """The ground in words, citing its article where the regime's law is the GDPR's."""
    if ground is None:
        return None
    return _cited(*_GROUND_WORDS.get(ground, (ground.replace("_", " "), None)), regime)


def regime_words(regime: str) -> str:
    return regime_name(regime)


def scope_words(scope: str | None, regime: str | None = None) -> str | None:
    """What the objection is to, citing the article that grants the right under the GDPR."""
    if scope is None:
        return None
    return _cited(*_SCOPE_WORDS.get(scope, (scope.replace("_", " "), None)), regime)


def restriction_words(grounds: list[str] | None, regime: str | None = None) -> str:
    return "; ".join(_cited(*_RESTRICTION_WORDS.get(g, (g.replace("_", " "), None)), regime) for g in grounds or [])


def details_words(details: dict[str, Any] | None, regime: str | None = None) -> list[tuple[str, str]]:
    """A request's details as (label, words): what the subject asked beyond the type. The appeal
    a request is of is in the pack's decisions."""
    shown: list[tuple[str, str]] = []
    for key, value in (details or {}).items():
        if key == "appeal_of":
            continue
        if key == "objection_scope":
            shown.append(("Objection to", scope_words(value, regime) or ""))
        elif key == "restriction_grounds":
            shown.append(("Restriction asked on the grounds", restriction_words(value, regime)))
        elif key == "corrections":
            shown.append(("Corrections asked", "; ".join(f"{field} → “{new}”" for field, new in value.items())))
        elif isinstance(value, list):
            shown.append((key.replace("_", " ").capitalize(), ", ".join(str(v).replace("_", " ") for v in value)))
        else:
            written = ("yes" if value else "no") if isinstance(value, bool) else str(value)
            shown.append((key.replace("_", " ").capitalize(), written))
    return shown


def channel_words(channel: str) -> str:
    return _CHANNEL_WORDS.get(channel, channel.replace("_", " "))


def origin_words(origin: str) -> str:
    return _ORIGIN_WORDS.get(origin, origin.replace("_", " "))


def action_words(action: str | None) -> str:
    return _ACTION_WORDS.get(str(action), str(action).replace("_", " "))


def recipient_words(recipient: str | None, action: str | None,
                    recipients: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The Art. 19 recipient a system's task tells, by who it is where the policy knows it, else by
    the kind of provider (as the letters name them); None where Art. 19 does not apply to the
    action. `recipients`: the `recipients` of the policy version the request was planned under."""
    if recipient is None or action not in _ART19_ACTIONS:
        return None
    known = recipients.get(recipient) or {}
    return known.get("identity") or known.get("name") or recipient.replace("_", " ")


def hold_words(kind: str | None) -> str:
    return _HOLD_WORDS.get(str(kind), f"{str(kind).replace('_', ' ')} hold")


def missing_words(reason: str | None) -> str:
    return _MISSING_WORDS.get(str(reason), str(reason).replace("_", " "))


def country_words(code: str | None, language: str = SOURCE_LANGUAGE) -> str:
    """A country by its name in `language` ("Belgium" for BE); a code Babel does not name stays as it is."""
    return Locale.parse(language).territories.get(code or "", code or "")


def ended_words(ended: str | None) -> str:
    """How a stopped workflow had ended, to follow "it had": "timed out", "been terminated"."""
    return _ENDED_WORDS.get(str(ended), str(ended or "ended").replace("_", " "))


def connector_words(connector: str | None) -> str:
    return _CONNECTOR_WORDS.get(str(connector), str(connector).replace("_", " "))


def package_words(kind: str | None) -> str:
    return _PACKAGE_WORDS.get(str(kind), f"{str(kind).replace('_', ' ')} package")


def status_words(status: str) -> str:
    return _STATUS_WORDS.get(status, status.replace("_", " "))


def purpose_words(purpose: str | None) -> str:
    return _PURPOSE_WORDS.get(str(purpose), str(purpose).replace("_", " "))


def alert_words(data: Mapping[str, Any], systems: Mapping[str, str] | None = None) -> str | None:
    """A staff alert's `letter.sent` or `letter.refused`: "alert to staff about <system>: <what it was about>", the
    system by its label where the alert names one; None for a letter to the subject, or an alert
    recorded before its event said (it reads "alert to staff", as it did)."""
    about = data.get("about")
    if data.get("purpose") != "staff_alert" or not about:
        return None
    system = data.get("about_system")
    named = f" about {(systems or {}).get(system, system)}" if system else ""
    return f"{purpose_words('staff_alert')}{named}: {_ALERT_WORDS.get(about, str(about).replace('_', ' '))}"


def day_words(value: Any, language: str) -> str:
    """A day held as an ISO string (a due date in the trail, a day in a workflow's refusal),
    written as the pages write a day (the `longdate` filter): in `language`, never moved through
    a timezone; one the calendar lacks ("2026-02-30") stays as it came."""
    try:
        return long_date(date.fromisoformat(str(value)), language)
    except ValueError:
        return str(value)


def step_words(step: str | None, about: str | None = None) -> str:
    """A failed step as staff read it: which letter or record it was (`about`, stored since
    2026-12-02: workflows/dsr_steps.py `step_about` writes "response letter", "approval.granted
    record", "status denied record"), else what its activity does. The page showed the activity's
    name ("send letter") and the event's code."""
    if about:
        what, _, kind = about.rpartition(" ")
        if kind == "letter":
            return f"sending the {_PURPOSE_WORDS.get(what.replace(' ', '_'), about)}"
        if kind == "record" and what.startswith("status "):
            return f"recording the status “{status_words(what.removeprefix('status ').replace(' ', '_'))}”"
        if kind == "record":
            return f"recording “{EVENT_WORDS.get(what, what.replace('_', ' '))}” in the audit trail"
        return about
    return _STEP_WORDS.get(str(step), str(step).replace("_", " "))


def made_before_stopping(changes: object, unsure: object = None) -> str:
    """The changes an http run made before its task stopped (activities/task_results.py, migration
    0049), as the request page, the evidence pack and the timeline say them: "at least" with those
    on the wire as its request closed whose answer is not on record (migration 0052), each of which
    the service may have made."""
    if unsure:
        return (f"at least {changes} change(s) made by its run before it stopped ({unsure} more on the wire "
                "as its request closed: not known whether made)")
    return f"{changes} change(s) made by its run before it stopped"


def partial_words(task: Mapping[str, Any]) -> str:
    """Beside a task's Changed count, the changes its http run made before it stopped that the
    count leaves out (a task needing staff, resolved by them, or stopped by its request's close:
    activities/task_results.py, migration 0049); nothing for any other task, nor where the count
    holds them already (a run needing staff that counted its own changes, whose request's close
    then kept the journal's count: beside it, "3 (and 3 ...)" read as 6)."""
    made, unsure = task.get("partial_changed") or 0, task.get("partial_unsure")
    return f" (and {made_before_stopping(made, unsure)})" if unsure or made > (task.get("changed") or 0) else ""


LEFT_UNCORRECTED = "kept as an earlier erasure left them, not corrected"


def task_status_words(task: Mapping[str, Any]) -> str:
    """A task's status as the request page, the evidence pack and the REST API say it. A correction
    whose records an earlier erasure kept under a hold, which it left as they were, did find them:
    "records kept as an earlier erasure left them, not corrected" where it corrected nothing (such a
    task recorded before 2026-12-07 reads `not_found`), the count beside `done` where it corrected
    the rest (schemas/workflow.py `records_left`)."""
    status = str(task.get("status") or "")
    left = records_left(str(task.get("action") or ""), task.get("datasets"))
    if left and status in ("done", "not_found") and not (task.get("found") or task.get("changed")):
        return f"records {LEFT_UNCORRECTED}"
    words = status.replace("_", " ")
    return f"{words} ({left} record(s) {LEFT_UNCORRECTED})" if left and status == "done" else words


def split_words(task: Mapping[str, Any], dataset_label: Callable[[str, str], str]) -> str:
    """Beside a correction's, restriction's or objection's Changed count, where its system found
    records it needed to do nothing to (an http lookup's other datasets, a customer's invoices):
    per dataset what the response letter says, in its words (activities/letter_outcome.py
    `_change_lines`, both from schemas/dataset_split.py), " — customer details: restricted, 1
    record(s); invoices: nothing to restrict, 1 record(s)". The page showed Found 2, Changed 1,
    and staff could not tell which record the letter said was restricted. Nothing for any other
    task: its counts are the letter's."""
    action = str(task.get("action") or "")
    split = split_datasets(action, task.get("datasets"))
    if split is None or not split.unneeded:
        return ""

    def named(datasets: list[str]) -> str:
        return ", ".join(sorted(dataset_label(str(task["system"]), d) for d in datasets))

    parts = [f"{named(split.acted)}: {ACTION_WORDS[action]}, {split.records} record(s)"] if split.records else []
    parts.append(f"{named(split.unneeded)}: {NOTHING_NEEDED[action]}, {split.found} record(s)")
    return " — " + "; ".join(parts)


# Every helper above a page's template writes codes with, by name (a form still submits the code).
# What became of a system asked and not yet answered when its request closed unanswered
# (api/read_models/evidence_decisions.py `_so_far`'s `called_off`): its call-off's last answer
# (activities/connectors/opendsr_calloff.py), its carrying out after cancelling (acted_after_call_off.py),
# a processor asked by e-mail told not to act (manual_email.py); the pack said "may have acted" of each.
_ASKED_AT_CLOSE_WORDS = {
    **{code: f"its call-off: {words}" for code, words in CALL_OFF_WORDS.items()},
    "acted_after": "its call-off: cancelled, then carried out all the same: it acted against the instruction, "
                   "and staff were alerted",
    "told": "told by e-mail not to act on it",
}


def asked_at_close_words(code: str | None) -> str:
    return _ASKED_AT_CLOSE_WORDS.get(code or "", "no call-off on record: it may have acted")


WORDS: dict[str, Callable[..., Any]] = {helper.__name__: helper for helper in (
    method_words, ground_words, status_words, purpose_words, regime_words, scope_words, restriction_words,
    details_words, channel_words, origin_words, action_words, recipient_words, step_words, hold_words, country_words,
    missing_words, ended_words, connector_words, package_words, partial_words, task_status_words, split_words,
    asked_at_close_words)}

# The helpers whose words may name an erasure or a rectification ("erase", "kept as an earlier
# erasure left them", "unlawful processing, erasure opposed", "sending the ... letter").
_NAMING = (action_words, restriction_words, step_words, task_status_words)


def words_for(regime: str | None) -> dict[str, Callable[..., Any]]:
    """`WORDS` for the pages of one request under `regime` (the console's request page, its
    evidence pack): those that may name an erasure or a rectification say the law's words
    (`in_law_words`: "delete", "correction" under the CCPA), as its letters do; `law_words` says a
    sentence of the template's own so ("Scheduled erasures" is "Scheduled deletions")."""
    def in_its_law(helper: Callable[..., str]) -> Callable[..., str]:
        @wraps(helper)
        def said(*args: Any, **kwargs: Any) -> str:
            return in_law_words(helper(*args, **kwargs), regime)
        return said
    return {**WORDS, **{helper.__name__: in_its_law(helper) for helper in _NAMING},
            "law_words": lambda text: in_law_words(text, regime)}
