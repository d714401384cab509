"""Letters as a subject receives them, for tests: the context the letter activity itself builds
(`build_context`, from a request row and the workflow's params as the workflow sends them),
rendered by `render_letter`, and the params of the paths several modules render."""

from __future__ import annotations

import re
import types
from datetime import UTC, date, datetime
from html import unescape
from typing import Any

import activities.letter_context as letter_context
from activities.connectors.base import HeldRecord
from activities.connectors.sql_erasure import kept_summary
from activities.letter_kept_closed import KEPT_AT_CLOSE
from activities.letter_stopped import DONE_SYSTEMS, STOPPED_RUNS
from activities.letter_templates import RenderedLetter, render_letter
from dsrflow.domain.deadlines import compute_deadline, receipt_date_for
from policy.model import LoadedPolicy, load_policy
from schemas.vocabulary import Language, Regime
from schemas.workflow import LetterJob

LOADED = load_policy()
LANGUAGES = [lang.value for lang in Language]
REGIMES = [r.value for r in Regime]
REQUEST_ID = "3f2b8c1e-9a4d-4e6f-8b2a-1c5d7e9f0a12"


class _Ctx:
    """What `build_context` reads of the activity context: the settings' base URL and the policy."""

    settings = types.SimpleNamespace(base_url="https://privacy.example.test")
    pool = None

    def __init__(self, loaded: LoadedPolicy) -> None:
        self.loaded = loaded

    async def policy(self, version: str) -> Any:
        return self.loaded


# 31 January in Brussels, the GDPR's day; 30 January where the other laws are (`received_on`).
RECEIVED_AT = datetime(2026, 1, 30, 23, 30, tzinfo=UTC)


def received_on(regime: str) -> date:
    """The day a `request_row` of `regime` was received, the day its clock and letters count from."""
    return receipt_date_for(RECEIVED_AT, "Europe/Brussels", regime)


def request_row(regime: str, request_type: str, language: str, **overrides: Any) -> dict[str, Any]:
    """A request row as `get_request_with` returns it."""
    received_at = RECEIVED_AT
    deadline = compute_deadline(regime, received_on(regime),
                                establishment="BE" if regime == "gdpr" else None)
    return {"id": REQUEST_ID, "request_type": request_type, "regime": regime, "received_at": received_at,
            "due_date": deadline.due_date, "extended_due_date": deadline.extended_due_date,
            "current_due_date": deadline.due_date, "details": {}, "subject_name": "Jane Doe",
            "subject_email": "jane@example.org", "country": "BE", "language": language,
            "policy_version": "v", "origin": "portal", **overrides}


async def as_sent(purpose: str, request_type: str, params: dict[str, Any], *, regime: str = "gdpr",
                  language: str = "en", loaded: LoadedPolicy = LOADED, pool: Any = None, **row: Any) -> RenderedLetter:
    """The letter `purpose` with the workflow's `params`, built and rendered as the letter activity
    does, under the shipped policy unless `loaded` gives another. The tasks whose run changed
    something before they stopped, and the systems done with changes: `stopped_runs` ([[system,
    changes, status], ...]) and `done_systems` if given, else read from `pool` for the request `id`
    as the activity reads them with the request (and the records holds kept, `kept_at_close`), else none."""
    request = request_row(regime, request_type, language, **row)
    if pool is not None and "stopped_runs" not in row:
        request["stopped_runs"], request["done_systems"], request["kept_at_close"] = await pool.fetchrow(
            f"SELECT {STOPPED_RUNS}, {DONE_SYSTEMS}, {KEPT_AT_CLOSE} FROM dsr_requests r WHERE r.id = $1", request["id"])
    job = LetterJob(request_id=request["id"], purpose=purpose, key="1", params=params)
    context = await letter_context.build_context(_Ctx(loaded), request, job, language)  # type: ignore[arg-type]
    return render_letter(purpose, context, language)


def both(letter: RenderedLetter) -> list[str]:
    """The plain text and the HTML's text, whitespace folded (what a reader sees)."""
    html = unescape(re.sub(r"<[^>]+>", " ", letter.html.split("<body", 1)[1]))
    return [" ".join(letter.text.split()), " ".join(html.split())]

# The workflow runs no task on this path (workflows/dsr.py, `_process`): the report is empty and
# the decision travels with it.
REFUSED = {"report": {"results": []},
            "decision": {"compelling_grounds": True,
                         "explanation": "Fraud monitoring of this account is required by our acquirer."}}


def kept_records() -> list[dict[str, Any]]:
    """What the fan-out stores for an erasure that kept records (`kept_summary`, in the policy's
    source language): two invoices under the accounting statute and the CRM under a legal-claims
    hold placed with the API's default basis."""
    policy = LOADED.policy
    held = [HeldRecord("invoices", "INV-1", "statutory", "be_accounting", date(2033, 12, 31)),
            HeldRecord("invoices", "INV-2", "statutory", "be_accounting", date(2033, 12, 31))]
    hold_id = "0b9f8f1e-1111-4222-8333-444455556666"
    legal = {hold_id: {"basis": "Art. 17(3)(e) GDPR: establishment, exercise or defence of legal claims",
                       "review_date": date(2026, 6, 30)}}
    return (kept_summary(policy, "billing", held, {})
            + kept_summary(policy, "crm", [HeldRecord("all", "all", "legal_claims", hold_id, None)], legal))


def erasure_with_kept() -> dict[str, Any]:
    return {"report": {"results": [
        # Per dataset, as the sql connector counts them: the customer record and a mandate erased, both
        # invoices kept (without them the letter read "Billing, all records: erased" above the invoices kept).
        {"system": "billing", "action": "erase", "status": "done", "found": 4, "changed": 2, "kept": 2,
         "datasets": {"customers": {"found": 1, "changed": 1, "deleted": 1},
                      "mandates": {"found": 1, "changed": 1, "deleted": 1}, "invoices": {"found": 2, "kept": 2}},
         "kept_records": [k for k in kept_records() if k["system"] == "billing"]},
        {"system": "crm", "action": "erase", "status": "done", "found": 1, "changed": 0, "kept": 1,
         "kept_records": [k for k in kept_records() if k["system"] == "crm"]}]}}


APPEAL_OF = "11111111-2222-4333-8444-555555555555"
