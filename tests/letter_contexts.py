"""Letter contexts as the workflow builds them, shared by the letter tests."""


from __future__ import annotations

import copy
from datetime import UTC, date, datetime

from activities.letter_labels import staff_type_label
from activities.letter_outcome import _kept_item
from activities.letter_refusals import remedies_context
from dsrflow.i18n import ENGLISH
from policy.model import load_policy

REQUEST_ID = "3f2b8c1e-9a4d-4e6f-8b2a-1c5d7e9f0a12"
EVIL_NAME = '<script>alert("x")</script>'
SUBJECT_EMAIL = "jane.doe@example.org"
EXPIRES = datetime(2026, 2, 7, 14, 5, tzinfo=UTC)

AUTHORITY = {
    "name": "Autorité de protection des données / Gegevensbeschermingsautoriteit "
    "(Data Protection Authority)",
    "address": "Rue de la Presse 35 / Drukpersstraat 35, 1000 Brussels, Belgium",
    "website": "https://www.dataprotectionauthority.be",
    "email": "contact@apd-gba.be",
    "phone": "+32 2 274 48 00",
}

# The remedies of a refusal under the GDPR, as the default policy words them for a Belgian subject.
REMEDIES = remedies_context(load_policy().policy, "gdpr", "BE", appeal=False)
assert REMEDIES["authority"] == AUTHORITY

# What an erasure kept, as the fan-out stores it (`kept_summary`: the policy's texts in its source
# language), and as the letter activity reads it out (`_kept_item`; in another language, from the
# policy's translation and our catalog: tests/test_letter_languages.py).
_ACCOUNTING = load_policy().policy.statutory_holds["be_accounting"]
STORED_KEPT = [
    {"system": "billing", "dataset": "invoices", "records": 2, "hold_kind": "statutory",
     "basis": _ACCOUNTING.basis, "law": _ACCOUNTING.law, "until": "2033-12-31"},
    {"system": "crm", "dataset": "all", "records": 1, "hold_kind": "legal_claims",
     "basis": "Art. 17(3)(e) GDPR: establishment, exercise or defence of legal claims",
     "law": "a legal claim (establishment, exercise or defence of legal claims)", "until": "2026-06-30"},
]
KEPT = [_kept_item(k, load_policy().policy, "gdpr") for k in STORED_KEPT]

ACTIONS = [
    {"system": "crm", "category": "contact details", "action": "erased", "records": 3},
    {"system": "email", "category": "marketing preferences", "action": "erased", "records": 1},
]


def base_context() -> dict:
    return {
        "controller": {
            "name": "Connexeon BV",
            "registration": "0867496536",
            "address": "Aalmoezenierstraat 20A, 2000 Antwerpen, Belgium",
            "privacy_email": "privacy@onetagger.com",
        },
        "request": {
            "id": REQUEST_ID,
            "type": "erasure",
            "type_label": "erasure (right to be forgotten, Art. 17 GDPR)",
            "regime": "gdpr",
            "regime_name": "GDPR",
            "received_date": date(2026, 1, 31),
            "due_date": date(2026, 3, 2),
            "extended_due_date": date(2026, 4, 30),
            "current_due_date": date(2026, 3, 2),
        },
        "subject": {"name": EVIL_NAME, "email": SUBJECT_EMAIL},
        "portal_url": "https://privacy.onetagger.com/requests",
        # The shipped policy's (policy/connexeon.yaml `defaults.timezone`), as build_context gives it.
        "timezone": "Europe/Brussels",
    }


EXTRA: dict[str, dict] = {
    "acknowledgement": {"verification_required": True},
    "verification": {
        "code": "482913",
        "link": "https://privacy.onetagger.com/verify?token=abc&x=1",
        "expires_at": EXPIRES,
        "max_attempts": 5,
    },
    "reminder": {
        "code": "730118",
        "link": "https://privacy.onetagger.com/verify?token=def",
        "expires_at": EXPIRES,
        "max_attempts": 5,
    },
    # LGPD Art. 19, I (activities/letter_confirmation.py): nothing in our own systems, processors asked.
    "simplified_confirmation": {"found": False, "unread": False, "asked": True},
    "extension": {
        "reason": "Your request concerns records in twelve systems, including archived billing data.",
        "new_due_date": date(2026, 4, 30),
    },
    "response": {
        "outcome": {
            "summary": "We erased your account, contact details and marketing preferences.",
            "actions": ACTIONS,
            "kept": KEPT,
            "informed": [],
            "missing": [],
            "package_link": None,
            "package_expires_at": None,
        }
    },
    "denial": {
        "reason_code": "excessive",
        "reason_label": "Manifestly excessive request",
        "explanation": "This is the fifth identical request in two weeks; we answered it on 2 February 2026.",
        "remedies": REMEDIES,
        "acted_in": ["Website analytics (users and page events)"], "asked_in": [],
    },
    "closed_unverified": {"expired_at": EXPIRES, "remedies": REMEDIES},
    "cancellation": {"reason": "Your request repeats request 5d0c, which we answered on 2 February 2026.",
                     "withdrawn": False, "remedies": REMEDIES,
                     "acted_in": ["CRM (contacts, support requests, live chat)", "Billing"],
                     "asked_in": ["E-mail marketing"]},
    "restriction_lift": {
        "reason": "The court case you needed the records for was settled on 3 February 2026.",
        "lift_on": date(2026, 2, 9), "notice_days": 0,
        "restriction": {
            "since": datetime(2025, 11, 4, 9, 30, tzinfo=UTC),
            "grounds": ["you needed the data for the establishment, exercise or defence of legal claims "
                        "(Art. 18(1)(c) GDPR)"],
            "recipients": ["Financial services and accounting provider"],
        },
        "complaint": REMEDIES,
    },
    "staff_alert": {"kind": "due_in_7_days", "days_left": 7, "detail": "Billing connector awaits a manual step."},
}
# A UK complaint's progress letter (workflows/complaint_progress.py): its request names the one
# complained of, and the Commissioner as a complaint undecided names them.
EXTRA["complaint_progress"] = {
    "request": {**base_context()["request"], "regime": "uk_gdpr", "regime_name": "UK GDPR",
                "appeal_of": "9d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"},
    "stage": "compliance", "late": False, "next_date": date(2026, 2, 28),
    "complaint": remedies_context(load_policy().policy, "uk_gdpr", "GB", appeal=True, undecided=True),
}


def full_context(purpose: str, **overrides) -> dict:
    ctx = base_context()
    if purpose == "staff_alert":  # staff read the type by its plain name, as the letter activity gives it
        request = ctx["request"]
        request["type_label"] = staff_type_label(request["type"], request["regime"], ENGLISH)
    ctx.update(copy.deepcopy(EXTRA[purpose]))
    ctx.update(overrides)
    return ctx
