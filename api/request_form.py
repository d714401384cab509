"""The request form the portal and the console share: reading the type's details from a posted
form, and turning validation errors into one message per field for the page to show beside it."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from api.problems import field_errors
from policy.intake import intake_problems
from policy.model import Policy
from schemas.requests import ObjectionScope, RequestDetails, RestrictionGround

SUBMISSION = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
RESTRICTION_LABELS = {
    RestrictionGround.accuracy_contested: "The accuracy of the data is contested (Art. 18(1)(a))",
    RestrictionGround.unlawful_processing: "The processing is unlawful but erasure is not wanted (Art. 18(1)(b))",
    RestrictionGround.needed_for_legal_claims: "The data is no longer needed but is needed for legal claims (Art. 18(1)(c))",
    RestrictionGround.objection_pending: "An objection is pending our decision (Art. 18(1)(d))",
}
OBJECTION_LABELS = {
    ObjectionScope.direct_marketing: "Direct marketing (newsletters, offers)",
    ObjectionScope.profiling: "Profiling",
    ObjectionScope.legitimate_interest: "Other processing based on our legitimate interests",
}
M = TypeVar("M", bound=BaseModel)
LABELS = {"restriction_labels": RESTRICTION_LABELS, "objection_labels": OBJECTION_LABELS}


def text(form: FormData, name: str) -> str | None:
    value = str(form.get(name, "")).strip()
    return value or None


def form_values(form: FormData) -> dict[str, Any]:
    """What was typed, to fill the form in again when it comes back with errors."""
    values: dict[str, Any] = {key: str(value) for key, value in form.items()}
    values["restriction_grounds"] = [str(g) for g in form.getlist("restriction_grounds")]
    return values


def _corrections(form: FormData) -> dict[str, str]:
    """The rectification fields: a corrected name, and any other `field: value` lines."""
    corrections = {}
    if name := text(form, "correct_name"):
        corrections["name"] = name
    for line in str(form.get("other_corrections", "")).splitlines():
        if line.strip():
            field, sep, value = line.partition(":")
            if not sep or not field.strip() or not value.strip():
                raise ValueError("Write each other correction on its own line as: what it is: the correct value.")
            corrections[field.strip()] = value.strip()
    return corrections


def details(form: FormData, errors: dict[str, str]) -> dict[str, Any]:
    """The type and its details; only the chosen type's details count (the form shows them all)."""
    kind = text(form, "type")
    body: dict[str, Any] = {"type": kind, "country": text(form, "country"), "language": text(form, "language")}
    if kind == "rectification":
        try:
            body["corrections"] = _corrections(form)
        except ValueError as exc:
            errors["corrections"] = str(exc)
    elif kind == "restriction":
        body["restriction_grounds"] = [str(g) for g in form.getlist("restriction_grounds")]
    elif kind == "objection":
        body["objection_scope"] = text(form, "objection_scope")
    return body


def check_policy(policy: Policy, new: RequestDetails | None, errors: dict[str, str]) -> None:
    """The policy's word on the request (policy/intake.py: each correction, the language), as the
    form's messages: one per form field."""
    if new is None:
        return
    problems = intake_problems(policy, new)
    corrections = {f.removeprefix("corrections."): m for f, m in problems.items() if f.startswith("corrections.")}
    if corrections:
        errors["corrections"] = "; ".join(f"{field}: {message}" for field, message in corrections.items())
    if "language" in problems:
        errors["language"] = problems["language"]


def validate(model: type[M], body: dict[str, Any], errors: dict[str, str],
             messages: dict[str, str] | None = None, *, nested: tuple[str, ...] = ()) -> M | None:
    """The model, or None with `errors` holding one message per form field (friendlier
    `messages` where given). A field is the first part of the error's location, or the second
    for the `nested` objects the form shows flat. Errors found earlier in `errors` are kept."""
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        for error in field_errors(list(exc.errors())):
            parts = error["field"].split(".")
            field = parts[1] if parts[0] in nested and len(parts) > 1 else parts[0]
            errors.setdefault(field, (messages or {}).get(field, error["message"]))
        return None
    return None if errors else parsed
