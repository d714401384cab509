"""The letters of tests/test_letter_reading.py, as the workflow sends them (`LETTER_CASES`: a
purpose and its context beyond the base one, by case name; `_render_case` renders one under a
regime). tests/test_letter_regime_content.py reads the same cases for each regime's content."""



from __future__ import annotations

import copy
from datetime import UTC, date, datetime

from activities.citations import cited_label, regime_name
from activities.letter_kept_closed import kept_at_close
from activities.letter_labels import LETTER_TYPE_LABELS, denial_label, staff_type_label
from activities.letter_objection import decision_summary
from activities.letter_outcome import response_outcome
from activities.letter_refusals import refuses_in_part, remedies_context
from activities.letter_templates import (
    DEFAULT_WARNING_DAYS,
    RenderedLetter,
    render_letter,
)
from activities.processor_mail import REMINDER_PURPOSE as MANUAL_REMINDER
from activities.processor_mail import REQUEST_PURPOSE as MANUAL_REQUEST
from activities.processor_mail import SCOPES as MANUAL_SCOPES
from activities.processor_mail import TITLES as MANUAL_ACTIONS
from activities.processor_mail import WITHDRAWAL_PURPOSE as MANUAL_WITHDRAWAL
from activities.processor_mail import asked_of_processor, render_processor_mail
from activities.restrictions import GROUND_LABELS
from api.legal_hold_body import LEGAL_CLAIMS
from dsrflow.i18n import ENGLISH
from policy.model import load_policy
from schemas.requests import DenialReason
from schemas.vocabulary import staff_alert_kinds
from tests.letter_contexts import (
    EXPIRES,
    EXTRA,
    SUBJECT_EMAIL,
    base_context,
)

# --- Every letter, in every regime, reads well -------------------------------------------------
#
# Each case below is a letter as the workflow sends it: contexts come from the real helpers
# (activities/letters.py for outcomes, denial labels and the objection decision; the policy for the
# authority and systems; manual_email's action table for processor e-mails), so a sentence the code
# adds twice, or a section a path leaves empty, shows here and not in a subject's inbox.

_POLICY = load_policy().policy


def _task(system: str, action: str, **fields) -> dict:
    return {"system": system, "action": action, "status": "done", **fields}


_KEPT_RECORDS = [
    {"system": "billing", "dataset": "invoices", "records": 4, "hold_kind": "legal_obligation",
     "basis": "Art. 17(3)(b) GDPR (compliance with a legal obligation)",
     "law": "Belgian VAT Code Art. 60 §4; CIR 92 Art. 315", "until": "2036-01-01"},
    {"system": "crm", "dataset": "all", "records": 0, "hold_kind": "legal_claims",
     "basis": LEGAL_CLAIMS,  # as a hold placed through the API stores it
     "law": "Belgian Civil Code Art. 2262bis", "until": "2027-06-30"},
]

# Billing's records kept under two laws, one of them at two end dates (documents of two years),
# and a legal-claims hold over the CRM and the survey processor: as `kept_summary` stores them.
_TAX_LAW = "Belgian Income Tax Code (CIR 92) Art. 315: 10 years"  # a statute no longer in the policy: as stored
_ACCOUNTING = {"hold_kind": "statutory", "hold_ref": "be_accounting", "basis": _POLICY.statutory_holds["be_accounting"].basis,
               "law": _POLICY.statutory_holds["be_accounting"].law}
_TWO_LAWS = [
    {"system": "billing", "dataset": "invoices", "records": 2, **_ACCOUNTING, "until": "2029-12-31"},
    {"system": "billing", "dataset": "invoices", "records": 1, **_ACCOUNTING, "until": "2033-12-31"},
    {"system": "billing", "dataset": "payments", "records": 1, "hold_kind": "statutory", "hold_ref": "be_tax",
     "basis": _KEPT_RECORDS[0]["basis"], "law": _TAX_LAW, "until": "2036-12-31"},
]
_CLAIMS_AT = {system: [{"system": system, "dataset": "all", "records": 0, "hold_kind": "legal_claims",
                        "hold_ref": "0b9f8f1e-1111-4222-8333-444455556666", "basis": LEGAL_CLAIMS,
                        "law": "a legal claim (establishment, exercise or defence of legal claims)",
                        "until": "2027-06-30"}] for system in ("crm", "surveys", "work_management")}


def _kept_at(fates: dict[str, str] | None = None, billing: list[dict] = _TWO_LAWS) -> list[dict]:
    """The erasure tasks' kept records as the closing letter reads them (letter_kept_closed.py
    KEPT_AT_CLOSE), each with its `fate` ("<system>" or "<system> <until>" -> fate; else kept)."""
    fates = fates or {}
    return [{"system": system, "whole": system != "billing", "kept": [
        {**k, "fate": fates.get(f"{system} {k['until']}", fates.get(system, "kept"))} for k in kept]}
        for system, kept in (("billing", billing), *((s, _CLAIMS_AT[s]) for s in ("crm", "surveys", "work_management")))]


# Periods over by the time the letter is written, their erasure not yet run: the 2025 invoices
# beside those of 2033, the payments alone.
_PERIODS_ENDED = [{**_TWO_LAWS[0], "until": "2025-12-31"}, _TWO_LAWS[1], {**_TWO_LAWS[2], "until": "2024-12-31"}]


_REPORTS = {
    "erasure": {"results": [
        _task("crm", "erase", changed=3, datasets={"contacts": {"erased": 2}, "support_requests": {"erased": 1}},
              recipient="communication_crm"),
        _task("billing", "erase", changed=1, datasets={"customers": {"erased": 1}}, kept=4,
              kept_records=_KEPT_RECORDS, recipient="financial_services"),
        _task("surveys", "erase", changed=1, recipient="surveys",
              note="The survey provider confirmed that your answers will be gone from its backups by 1 May 2026."),
    ]},
    "erasure-two-laws": {"results": [
        _task("billing", "erase", changed=1, datasets={"customers": {"erased": 1}}, kept=4, kept_records=_TWO_LAWS,
              recipient="financial_services"),
        _task("crm", "erase", kept=1, kept_records=_CLAIMS_AT["crm"], recipient="communication_crm"),
        _task("surveys", "erase", kept=1, kept_records=_CLAIMS_AT["surveys"], recipient="surveys")]},
    "erasure-two-laws-since": {"results": []},  # its results are "erasure-two-laws"' (below)
    "erasure-periods-ended": {"results": [_task("billing", "erase", kept=4, kept_records=_PERIODS_ENDED)]},
    "access": {"results": [_task("crm", "access", found=3, datasets={"contacts": {"found": 3}})],
               "package": {"package_id": "pkg-1", "systems": {"crm": 3, "billing": 2}}},
    # A processor without an API sent its export; staff resolved the other's task without one.
    "access-missing": {"results": [_task("surveys", "access"),
                                   _task("work_management", "access", message="resolved by staff: no answer")],
                       "package": {"package_id": "pkg-2", "systems": {"crm": 3},
                                   "processor_files": {"surveys": 2}, "missing": {"work_management": "not_provided"}}},
    "rectification": {"results": [_task("crm", "rectify", changed=1, datasets={"contacts": {"rectified": 1}},
                                        recipient="communication_crm")]},
    "objection": {"results": [_task("email_marketing", "object", changed=1)]},
    # Refused on compelling grounds, the workflow runs no task (workflows/dsr.py, `_process`).
    "objection-refused": {"results": []},
}


_REPORTS["erasure-two-laws-since"] = _REPORTS["erasure-two-laws"]
# Where what a report kept stands when its letter is written (activities/letter_kept_since.py): a
# statute's period over for some records, a hold released and its data erased in one system and
# asked of the processor in another.
_SINCE = {"erasure-two-laws-since": _kept_at({"billing 2029-12-31": "erased", "crm": "erased", "surveys": "asked"}),
          "erasure-periods-ended": _kept_at(billing=_PERIODS_ENDED),
          # ... or a hold released, its data in the CRM and at the processor not reached by the sweep since.
          "erasure-claims-unreached": _kept_at({"crm": "unreached", "surveys": "unreached"}),
          # ... or their failed erasures asked again by staff: in the CRM (ours) the sweep erases, the
          # processor is asked (letter_kept_closed.py `_FATE` "asked").
          "erasure-claims-asked-again": _kept_at({"crm": "asked", "surveys": "asked"})}
_REPORTS["erasure-claims-unreached"] = _REPORTS["erasure-two-laws"]
_REPORTS["erasure-claims-asked-again"] = _REPORTS["erasure-two-laws"]


def _response(request_type: str, decision: dict | None = None, report: str | None = None) -> tuple[str, dict]:
    """A response case: its outcome is built in the regime each render gives (`_response_extra`),
    as build_context builds it, so what the outcome cites (a kept record's basis, an objection's
    test) is checked in every regime."""
    return "response", {RESPONSE_OF: (request_type, decision, report)}


def _response_extra(request_type: str, decision: dict | None, report: str | None, regime: str) -> dict:
    link = "https://privacy.onetagger.com/v1/public/packages/tok123" if request_type == "access" else None
    expires = datetime(2026, 3, 9, 23, 59, tzinfo=UTC) if link else None
    outcome = response_outcome(_REPORTS[report or request_type], _POLICY, link, expires, regime=regime,
                               since=_SINCE.get(report or ""))
    if decision:
        outcome["summary"] = decision_summary(decision, regime)
        outcome["processing_continues"] = decision["compelling_grounds"]  # as build_context sets it
    extra = {"request_type": request_type, "outcome": outcome}
    return {**extra, REMEDIES_OF_REGIME: True} if refuses_in_part(outcome, decision) else extra


# A case's marker for the remedies of the regime it is rendered in (activities/letters.py): as a
# refusal (`remedies`), as an appeal's refusal (no further appeal), or an extension's complaint.
REMEDIES_OF_REGIME, APPEAL_REMEDIES, COMPLAINT_OF_REGIME = "remedies-of-regime", "appeal-remedies", "complaint-of-regime"
# A response case's inputs (request type, objection decision, report), built per regime.
RESPONSE_OF = "response-of"
# A lift letter's grounds (GROUND_LABELS' codes), worded in each render's regime as
# activities/restrictions.py words them.
LIFT_GROUNDS = "lift-grounds"
# A case's marker for a letter of an appeal (its `appeal_of`), without remedies of its own.
OF_AN_APPEAL = "of-an-appeal"



# A closing letter's kept records (`_kept_at`'s tasks), worded in each render's regime as
# activities/letters.py words them (`kept_at_close`).
KEPT_AT_CLOSE_OF = "kept-at-close-of"


# A processor e-mail's objection scope: its title and instruction are worded in the regime's law.
OBJECTION_SCOPE = "objection-scope"


def _processor(purpose: str, action: str, scope: str | None = None) -> tuple[str, dict]:
    extra = {"reminder_number": 2, "first_sent_at": date(2026, 2, 3)} if purpose == "processor_reminder" else \
        {"first_sent_at": date(2026, 2, 3)} if purpose == MANUAL_WITHDRAWAL else {}
    return purpose, {
        "processor": {"label": "Survey service provider", "contact_name": None},
        "action": action, OBJECTION_SCOPE: scope,
        "corrections": [("city", "Gent"), ("last_name", "Peeters")] if action == "rectify" else [],
        "subject_email": SUBJECT_EMAIL,
        "confirm_url": "https://privacy.onetagger.com/v1/callbacks/manual/tok456",
        "reminder_days": 3,
        "upload": _POLICY.processor_exports.model_dump(mode="json") if action == "access" else None, **extra,
    }


# What a processor asked by e-mail reads of a restriction and a lift of the same person in either
# order (dsrflow/stores/lifts_outstanding_store.py `lifts_told`), in the request and its reminders:
# a restriction supersedes an older lift e-mail not confirmed; a lift names the restriction it ends.
SUPERSEDED_LIFT = {"id": "5b6c7d8e-9f01-4a2b-8c3d-4e5f60718293", "sent_at": datetime(2026, 1, 20, 10, 5, tzinfo=UTC)}
TOLD_OF_THE_OTHER = {
    "restrict-supersedes": ("restrict", {"supersedes": [SUPERSEDED_LIFT]}),
    "restrict-supersedes-two": ("restrict", {"supersedes": [SUPERSEDED_LIFT, {
        "id": "6c7d8e9f-0a1b-4c2d-9e3f-506172839405", "sent_at": datetime(2026, 1, 27, 14, 0, tzinfo=UTC)}]}),
    "lift_restriction-ends": ("lift_restriction", {"lifts_restriction_of": datetime(2025, 11, 4, 9, 30, tzinfo=UTC)}),
}


def _letter_cases() -> dict[str, tuple[str, dict]]:
    cases: dict[str, tuple[str, dict]] = {
        "acknowledgement": ("acknowledgement", {"verification_required": True}),
        "acknowledgement-verified": ("acknowledgement", {"verification_required": False}),
        "verification": ("verification", EXTRA["verification"]),
        "reminder": ("reminder", EXTRA["reminder"]),
        "extension": ("extension", {**EXTRA["extension"], COMPLAINT_OF_REGIME: True}),
        # LGPD Art. 19, I at once (activities/letter_confirmation.py): found in our own systems; none
        # there, processors still asked (one of ours unread too); no system holds anything.
        "simplified_confirmation-found": ("simplified_confirmation", {
            "request_type": "access", "found": True, "unread": False, "asked": True}),
        "simplified_confirmation-asked": ("simplified_confirmation", {
            "request_type": "access", "found": False, "unread": True, "asked": True}),
        "simplified_confirmation-none": ("simplified_confirmation", {
            "request_type": "access", "found": False, "unread": False, "asked": False}),
        "response-erasure-kept": _response("erasure"),
        "response-access-package": _response("access"),
        "response-access-processor-missing": _response("access", report="access-missing"),
        "response-rectification": _response("rectification"),
        "response-objection-upheld": _response("objection", {
            "compelling_grounds": False, "explanation": "Your data is no longer used for that purpose."}),
        "response-objection-refused": _response("objection", {
            "compelling_grounds": True,
            "explanation": "We need the records to detect fraud on your account, which protects you as well."},
            report="objection-refused"),
        "closed_unverified": ("closed_unverified", {"expired_at": EXPIRES, REMEDIES_OF_REGIME: True}),
        "cancellation-by-staff": ("cancellation", {"reason": EXTRA["cancellation"]["reason"], "withdrawn": False,
                                                   REMEDIES_OF_REGIME: True}),
        "cancellation-withdrawn": ("cancellation", {"reason": "The subject withdrew it by phone on 3 February.",
                                                    "withdrawn": True, "acted_in": ["CRM", "Billing"],
                                                    "asked_in": ["E-mail marketing"]}),
        # A processor still asked by e-mail, and an OpenDSR job called off (activities/letter_stopped.py).
        "cancellation-called-off": ("cancellation", {"reason": "The subject withdrew it by phone on 3 February.",
                                                     "withdrawn": True, "acted_in": ["CRM"],
                                                     "asked_in": ["Survey service provider"],
                                                     "called_off_in": ["E-mail marketing"]}),
        # Records kept under two laws (one at two end dates) and a legal-claims hold at three systems,
        # as they stand when the letter is written (activities/letter_kept_closed.py): kept still...
        "cancellation-withdrawn-kept": ("cancellation", {"reason": "The subject withdrew it by phone on 3 February.",
                                                         "withdrawn": True, "acted_in": ["billing", "crm"],
                                                         "asked_in": [], KEPT_AT_CLOSE_OF: _kept_at()}),
        # ... or a statute's period ended, one claim ended before the close and its data erased, another's
        # asked of the processor, a third's released since the close, not erased.
        "cancellation-by-staff-kept-since": ("cancellation", {
            "reason": EXTRA["cancellation"]["reason"], "withdrawn": False, "acted_in": ["billing"], "asked_in": [],
            REMEDIES_OF_REGIME: True, KEPT_AT_CLOSE_OF: _kept_at({
                "billing 2029-12-31": "erased", "crm": "erased", "surveys": "asked", "work_management": "released"})}),
        # ... or a claim's erasure failed once it ended: the processor's refused or never confirmed,
        # the CRM's not carried out (not "waiting for confirmation").
        "denial-kept-erasure-failed": ("denial", {
            "reason_code": "other", REMEDIES_OF_REGIME: True, "acted_in": ["billing"], "asked_in": [],
            "explanation": "We reviewed the request and found it was made on behalf of someone else without a mandate.",
            KEPT_AT_CLOSE_OF: _kept_at({"crm": "failed", "surveys": "failed"})}),
        "denial-kept-all-deleted": ("denial", {
            "reason_code": "other", REMEDIES_OF_REGIME: True, "acted_in": ["billing"], "asked_in": [],
            "explanation": "We reviewed the request and found it was made on behalf of someone else without a mandate.",
            KEPT_AT_CLOSE_OF: _kept_at({"billing": "erased", "crm": "released"})}),
        "response-erasure-two-laws": _response("erasure", report="erasure-two-laws"),
        "response-erasure-kept-since": _response("erasure", report="erasure-two-laws-since"),
        "response-erasure-periods-ended": _response("erasure", report="erasure-periods-ended"),
        # A claim ended, the sweep not yet able to reach its systems: told so, not kept nor released.
        "response-erasure-claims-unreached": _response("erasure", report="erasure-claims-unreached"),
        "denial-kept-claims-unreached": ("denial", {
            "reason_code": "other", REMEDIES_OF_REGIME: True, "acted_in": ["billing"], "asked_in": [],
            "explanation": "We reviewed the request and found it was made on behalf of someone else without a mandate.",
            KEPT_AT_CLOSE_OF: _kept_at({"crm": "unreached", "surveys": "unreached"})}),
        # A claim's failed erasures asked again by staff: being erased in the CRM, asked of the processor.
        "response-erasure-claims-asked-again": _response("erasure", report="erasure-claims-asked-again"),
        "cancellation-withdrawn-claims-asked-again": ("cancellation", {
            "reason": "The subject withdrew it by phone on 3 February.", "withdrawn": True, "acted_in": ["billing"],
            "asked_in": [], KEPT_AT_CLOSE_OF: _kept_at({"crm": "asked", "surveys": "asked"})}),
        "cancellation-withdrawn-periods-ended": ("cancellation", {
            "reason": "The subject withdrew it by phone on 3 February.", "withdrawn": True, "acted_in": ["billing"],
            "asked_in": [], KEPT_AT_CLOSE_OF: _kept_at(billing=_PERIODS_ENDED)}),
        "denial-of-an-appeal": ("denial", {
            "reason_code": "other", APPEAL_REMEDIES: True,
            "explanation": "We reviewed our decision and confirm it: the records are needed to defend a claim."}),
        # A complaint to us under the UK GDPR alone; read in every regime all the same.
        "complaint_progress-late": ("complaint_progress", {"stage": "review", "late": True,
                                                           "next_date": date(2026, 3, 28), APPEAL_REMEDIES: True}),
        "complaint_progress-verification": ("complaint_progress", {"stage": "verification", "late": False,
                                                                   "next_date": None, APPEAL_REMEDIES: True}),
        "restriction_lift": ("restriction_lift", {**EXTRA["restriction_lift"], "request_type": "restriction",
                                                  LIFT_GROUNDS: ["needed_for_legal_claims"]}),
        # Another of the subject's restrictions still holds two systems (activities/restrictions.py).
        "restriction_lift-another-in-force": ("restriction_lift", {
            **EXTRA["restriction_lift"], "request_type": "restriction", LIFT_GROUNDS: ["objection_pending"],
            "restriction": {**EXTRA["restriction_lift"]["restriction"], "still_restricted": [
                {"reference": "6AK46AKM8F", "in_force": True,
                 "systems": ["CRM", "Website analytics (users and page events)"],
                 "where": ["in our CRM", "in our website analytics"]}]}}),
        # ... and one still under way, which may yet end without coming into force.
        "restriction_lift-another-under-way": ("restriction_lift", {
            **EXTRA["restriction_lift"], "request_type": "restriction", LIFT_GROUNDS: ["objection_pending"],
            "restriction": {**EXTRA["restriction_lift"]["restriction"], "still_restricted": [
                {"reference": "6AK46AKM8F", "in_force": False, "systems": ["Website analytics (users and page events)"],
                 "where": ["in our website analytics"]},
                {"reference": "7BL57BLN9G", "in_force": True, "systems": ["CRM"], "where": ["in our CRM"]}]}}),
        # An appeal withdrawn after another of the same refusal was closed for it
        # (activities/letter_closed_for.py): in the UK a complaint, whose form the letter links.
        "cancellation-withdrawn-appeal-others-closed-for": ("cancellation", {
            "reason": "The subject withdrew it by phone on 3 February.", "withdrawn": True, OF_AN_APPEAL: True,
            "closed_for": {"appeals": ["6AK46AKM8F", "7BL57BLN9G"],
                           "form_url": "https://privacy.example.test/portal/complaints?about=46AK46B46B&lang=en"}}),
        "restriction_lift-notice-two-grounds": ("restriction_lift", {
            **EXTRA["restriction_lift"], "request_type": "restriction", "notice_days": 14,
            "restriction": {"since": datetime(2025, 11, 4, 9, 30, tzinfo=UTC), "recipients": []},
            LIFT_GROUNDS: ["accuracy_contested", "objection_pending"]}),
    }
    for code in DenialReason:
        cases[f"denial-{code}"] = ("denial", {
            "reason_code": code,
            "explanation": "This is the fifth identical request in two weeks; we answered it on 2 February 2026.",
            REMEDIES_OF_REGIME: True})
    for kind in staff_alert_kinds(DEFAULT_WARNING_DAYS):
        days_left = int(kind.split("_")[2]) if kind.startswith("due_in_") else {"overdue": -3}.get(kind, 12)
        cases[f"staff_alert-{kind}"] = ("staff_alert", {"kind": kind, "days_left": days_left,
                                                        "detail": "Billing connector awaits a manual step."})
    for purpose in (MANUAL_REQUEST, MANUAL_REMINDER, MANUAL_WITHDRAWAL):
        for action in MANUAL_ACTIONS:
            for scope in (MANUAL_SCOPES if action == "object" else [None]):
                cases[f"{purpose}-{action}" + (f"-{scope}" if scope else "")] = _processor(purpose, action, scope)
        for name, (action, told) in TOLD_OF_THE_OTHER.items():
            if purpose != MANUAL_WITHDRAWAL:  # a restriction or a lift is never withdrawn (manual_email._withdraw)
                mail, ctx = _processor(purpose, action)
                cases[f"{purpose}-{name}"] = (mail, {**ctx, **told})
    return cases


LETTER_CASES = _letter_cases()
# The laws a case's letter is sent under, where not every one: the simplified confirmation is the
# LGPD's alone (schemas/requests.py refuses it under any other).
ONLY_UNDER: dict[str, tuple[str, ...]] = {case: ("lgpd",) for case, (purpose, _) in LETTER_CASES.items()
                                          if purpose == "simplified_confirmation"}


def applies(case: str, regime: str) -> bool:
    return regime in ONLY_UNDER.get(case, (regime,))


def _render_case(case: str, regime: str, language: str = "en") -> RenderedLetter:
    """`case` in `regime`; a processor e-mail in `language` (the processor's), a letter in English."""
    purpose, extra = LETTER_CASES[case]
    ctx = base_context()
    ctx["subject"]["name"] = "Jane Doe"
    extra = copy.deepcopy(extra)
    if RESPONSE_OF in extra:
        extra = _response_extra(*extra.pop(RESPONSE_OF), regime)
    if purpose == "restriction_lift":  # the right to complain of its regime, as letters.py gives it
        extra["complaint"] = remedies_context(_POLICY, regime, "BE", appeal=False)
    if LIFT_GROUNDS in extra:
        extra["restriction"] = {**extra["restriction"], "grounds": [
            cited_label(GROUND_LABELS[code], regime) for code in extra.pop(LIFT_GROUNDS)]}
    request_type = extra.pop("request_type", "erasure")
    ctx["request"].update(regime=regime, regime_name=regime_name(regime), type=request_type,
                          type_label=staff_type_label(request_type, regime, ENGLISH) if purpose == "staff_alert"
                          else cited_label(LETTER_TYPE_LABELS[request_type], regime))
    if purpose in ("denial", "cancellation"):
        extra.setdefault("acted_in", [])  # a request closed before any system was changed
        extra.setdefault("asked_in", [])
    if KEPT_AT_CLOSE_OF in extra:  # as activities/letters.py builds it, the systems named by their labels
        row = {"request_type": request_type, "regime": regime, "kept_at_close": extra.pop(KEPT_AT_CLOSE_OF)}
        extra["kept_at_close"], acted = kept_at_close(row, _POLICY, _POLICY, ENGLISH, extra["acted_in"])
        extra["acted_in"] = [_POLICY.system_label(s) for s in acted]
    if purpose == "denial":
        extra["reason_label"] = denial_label(extra["reason_code"], regime)
    if extra.pop(REMEDIES_OF_REGIME, False):
        extra["remedies"] = remedies_context(_POLICY, regime, "BE", appeal=False)
    if extra.pop(OF_AN_APPEAL, False):
        ctx["request"]["appeal_of"] = "9d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
    if extra.pop(APPEAL_REMEDIES, False):
        ctx["request"]["appeal_of"] = "9d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
        remedies = remedies_context(_POLICY, regime, "BE", appeal=True, undecided=purpose == "complaint_progress")
        extra["complaint" if purpose == "complaint_progress" else "remedies"] = remedies
    if extra.pop(COMPLAINT_OF_REGIME, False) and _POLICY.remedies[regime].complaint_on_extension:
        extra["complaint"] = remedies_context(_POLICY, regime, "BE", appeal=False)
    ctx.update(extra)
    if purpose in (MANUAL_REQUEST, MANUAL_REMINDER, MANUAL_WITHDRAWAL):
        ctx["action_title"], ctx["instruction"] = asked_of_processor(ctx["action"], ctx.pop(OBJECTION_SCOPE), regime,
                                                                     language)
        return render_processor_mail(purpose, ctx, language)
    return render_letter(purpose, ctx)
