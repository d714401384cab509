"""The body of a legal-claims hold (Art. 17(3)(e) GDPR), as the REST API (api/rest/legal_holds.py)
and the console's Legal holds page (api/console/holds.py) both check it, against the policy's
systems and categories and the controller's today, given as validation context; and of its
release, whose reason is checked as the placing one is (`hold_reason`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationInfo, field_validator

from policy.model import Policy
from schemas.plain_text import StaffLine, StaffText

LEGAL_CLAIMS = "Art. 17(3)(e) GDPR: establishment, exercise or defence of legal claims"


def hold_reason(example: str) -> Any:
    """A reason staff give for a hold, a `StaffText` field: placing it (the claim the records are
    kept for), releasing it (why the claim ended). Required, trimmed (the models strip their
    strings), 10 to 2000 characters."""
    return Field(min_length=10, max_length=2000, examples=[example])


class NewLegalHold(BaseModel):
    """A hold on one subject, named by e-mail address or by a customer id that earlier requests
    tie to an address. Omit `systems`/`categories` to hold every system/category."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailStr | None = None
    customer_id: StaffLine | None = Field(None, min_length=1, max_length=200)
    systems: list[str] | None = Field(None, min_length=1, max_length=100, examples=[["billing", "crm"]])
    categories: list[str] | None = Field(None, min_length=1, max_length=100, examples=[["payments"]])
    basis: StaffText = Field(LEGAL_CLAIMS, min_length=3, max_length=500)
    reason: StaffText = hold_reason("Invoice dispute, claim filed at the Ghent enterprise court")
    review_date: date

    # The policy and the controller's "today" come in as validation context, so one response
    # names every bad field, shape and policy alike.
    @field_validator("systems", "categories")
    @classmethod
    def _known(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None or not info.context:
            return value
        known = info.context[info.field_name]
        unknown = [v for v in value if v not in known]
        if unknown:
            have = ", ".join(known) or "none"
            raise ValueError(f"not in the policy: {', '.join(map(repr, unknown))} (the policy has: {have})")
        return list(dict.fromkeys(value))

    @field_validator("review_date")
    @classmethod
    def _after_today(cls, value: date, info: ValidationInfo) -> date:
        today = (info.context or {}).get("today")
        if today is not None and value <= today:
            raise ValueError(f"must be after today ({today.isoformat()})")
        return value


class HoldRelease(BaseModel):
    """Why the claim a hold was kept for ended: settled, time-barred, withdrawn, placed by mistake."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: StaffText = hold_reason("Claim settled: settlement agreement signed on 2 December 2026")


def hold_context(policy: Policy) -> dict[str, Any]:
    """The validation context a hold is checked in: the policy's systems and categories, and the
    controller's today (in its timezone)."""
    return {"systems": list(policy.systems), "categories": list(policy.categories),
            "today": datetime.now(ZoneInfo(policy.defaults.timezone)).date()}
