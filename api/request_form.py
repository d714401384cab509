"""The request form the portal and the console share: reading the type's details from a posted
form, and turning validation errors into one message per field for the page to show beside it.

Labels and messages are written in English and marked `N_`: the page translates the labels as it
renders (`| translate`), and the messages are worded by the functions below in the language of
the translator they are given (the subject's on the portal; English, the default, for the
console, which speaks the staff language)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from api.problems import Problem, field_errors
from dsrflow.i18n import ENGLISH, N_, Translator
from policy.intake import intake_problems
from policy.model import LoadedPolicy, Policy
from policy.systems import correction_key, correction_words
from schemas.requests import MAX_COMPLAINT_REASONS, ObjectionScope, RequestDetails, RestrictionGround

SUBMISSION = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# The forms' words cite no article: the request's law follows from the country typed on the same
# form, and the letters cite each ground in that law (activities/citations.py).
RESTRICTION_LABELS = {
    RestrictionGround.accuracy_contested: N_("The accuracy of the data is contested"),
    RestrictionGround.unlawful_processing: N_("The processing is unlawful but erasure is not wanted"),
    RestrictionGround.needed_for_legal_claims: N_("The data is no longer needed but is needed for legal claims"),
    RestrictionGround.objection_pending: N_("An objection is pending our decision"),
}
OBJECTION_LABELS = {
    ObjectionScope.direct_marketing: N_("Direct marketing (newsletters, offers)"),
    ObjectionScope.profiling: N_("Profiling"),
    ObjectionScope.legitimate_interest: N_("Other processing based on our legitimate interests"),
}
_LINE_FORMAT = N_("Write each other correction on its own line as: what it is: the correct value.")
# Two values for one field ("phone" and "téléphone", or the name box and a "name:" line): which is
# meant cannot be guessed, and keeping the last would drop the other unseen.
_TWICE = N_("%(field)s is named twice: write each correction once.")
# The policy's words on a correction it refuses (policy/systems.py), where they are fixed: the
# subject reads them in their language. (A value's format problem names the format, in English.)
_NOTHING_CORRECTABLE = N_("nothing can be corrected on request here")
_NOT_CORRECTABLE = "is not something we can correct on request; ask for: "
_NOT_CORRECTABLE_WORDS = N_("is not something we can correct on request; ask for: %(fields)s")
M = TypeVar("M", bound=BaseModel)
# What the forms' pages need besides their values: the labels, and how long a complaint's reasons may be.
LABELS = {"restriction_labels": RESTRICTION_LABELS, "objection_labels": OBJECTION_LABELS,
          "max_reasons": MAX_COMPLAINT_REASONS}


def text(form: FormData, name: str) -> str | None:
    value = str(form.get(name, "")).strip()
    return value or None


def form_values(form: FormData) -> dict[str, Any]:
    """What was typed, to fill the form in again when it comes back with errors."""
    values: dict[str, Any] = {key: str(value) for key, value in form.items()}
    values["restriction_grounds"] = [str(g) for g in form.getlist("restriction_grounds")]
    return values


def field_words(policy: LoadedPolicy, language: str) -> list[dict[str, str]]:
    """What the form calls each thing a correction may name (`correction_words`), in `language`
    first, then in the policy's other languages: a French subject writes "téléphone" or "phone",
    and staff typing in a letter a subject wrote in Dutch, "telefoon"."""
    others = [lang.value for lang in policy.policy.languages.supported if lang.value != language]
    return [words_in(policy, lang) for lang in (language, *others)]


def words_in(policy: LoadedPolicy, language: str) -> dict[str, str]:
    """What the form calls each thing a correction may name, in `language` (`correction_words`)."""
    return correction_words(policy.in_language(language).systems.values())


def _corrections(form: FormData, words: Sequence[Mapping[str, str]], t: Translator) -> dict[str, str]:
    """The rectification fields: a corrected name, and any other `field: value` lines, each field
    named by the key it means (`correction_key`: in `words`, or as the key itself). A line that is
    not `field: value`, or a field named twice, is refused: ValueError, worded by `t`."""
    corrections = {}
    if name := text(form, "correct_name"):
        corrections["name"] = name
    for line in str(form.get("other_corrections", "")).splitlines():
        if line.strip():
            field, sep, value = line.partition(":")
            if not sep or not field.strip() or not value.strip():
                raise ValueError(t.gettext(_LINE_FORMAT))
            key = correction_key(field, *words)
            if key in corrections:
                raise ValueError(t.gettext(_TWICE) % {"field": words[0].get(key, key) if words else key})
            corrections[key] = value.strip()
    return corrections


def details(form: FormData, errors: dict[str, str], t: Translator = ENGLISH,
            words: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    """The type and its details; only the chosen type's details count (the form shows them all).
    A message for the form is worded by `t`; a correction's field is read in `words`
    (`field_words`)."""
    kind = text(form, "type")
    body: dict[str, Any] = {"type": kind, "country": text(form, "country"), "language": text(form, "language")}
    if kind == "rectification":
        try:
            body["corrections"] = _corrections(form, words, t)
        except ValueError as exc:
            errors["corrections"] = str(exc)
    elif kind == "restriction":
        body["restriction_grounds"] = [str(g) for g in form.getlist("restriction_grounds")]
    elif kind == "objection":
        body["objection_scope"] = text(form, "objection_scope")
    if appeal := text(form, "appeal_of"):
        body["appeal_of"] = appeal
    return body


def staff_details(form: FormData, errors: dict[str, str], words: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """A staff form's type and details (`details`), and what only staff type: the reasons of a UK
    complaint made to us by telephone, post or e-mail (schemas/requests.py `complaint_reasons`,
    refused on any other request, naming the field, as the API refuses it), and the regime chosen,
    unless the request appeals another: an appeal takes that request's regime
    (dsrflow/domain/appeals.py), whatever the form's select still says."""
    body = details(form, errors, words=words)
    if reasons := text(form, "complaint_reasons"):
        body["complaint_reasons"] = reasons
    if form.get("simplified_confirmation") == "true":  # LGPD Art. 19, I; refused, naming it, elsewhere
        body["simplified_confirmation"] = True
    return body if body.get("appeal_of") else {**body, "regime": text(form, "regime") or "gdpr"}


def refused_fields(problem: Problem, errors: dict[str, str], words: Sequence[Mapping[str, str]] = ()) -> bool:
    """A refusal of what the form said (422 naming its fields: an appeal of a request that cannot
    be appealed, say), as the form's messages; False for any other problem. The corrections it
    refuses one by one (`corrections.<field>`: those an appeal took from the refused request, which
    the policy in force no longer takes) are one message about the form's corrections, worded as
    the form's own check words them (`check_policy`, `words`), shown beside them: the summary at
    the top alone showed them, its links leading to no field."""
    named = problem.extra.get("errors") or []
    if problem.status != 422 or not named:
        return False
    problems = {str(error["field"]): str(error["message"]) for error in named}
    if refused := _corrections_refused(problems, ENGLISH, words):
        errors["corrections"] = refused
    errors.update({field: message for field, message in problems.items() if not field.startswith("corrections.")})
    return True


def _policy_words(message: str, t: Translator, words: Mapping[str, str] | None) -> str:
    if message == _NOTHING_CORRECTABLE:
        return t.gettext(_NOTHING_CORRECTABLE)
    if message.startswith(_NOT_CORRECTABLE):
        fields = ", ".join(sorted(set(words.values()))) if words else message.removeprefix(_NOT_CORRECTABLE)
        return t.gettext(_NOT_CORRECTABLE_WORDS) % {"fields": fields}
    return message


def check_policy(policy: Policy, new: RequestDetails | None, errors: dict[str, str], t: Translator = ENGLISH,
                 messages: dict[str, str] | None = None, words: Sequence[Mapping[str, str]] = ()) -> None:
    """The policy's word on the request (policy/intake.py: each correction, the language), as the
    form's messages: one per form field, worded by `t`, or the friendlier `messages` given for a
    field (as `validate` takes them). What can be corrected is named in the first of `words`
    (`field_words`), else by the policy's keys; so is each field refused. Where nothing can be
    corrected, that is said once, of no field (the name box's "name" has no words then)."""
    if new is None:
        return
    problems = intake_problems(policy, new)
    if refused := _corrections_refused(problems, t, words):
        errors["corrections"] = refused
    if "language" in problems:
        errors["language"] = (messages or {}).get("language", problems["language"])


def _corrections_refused(problems: Mapping[str, str], t: Translator, words: Sequence[Mapping[str, str]]) -> str | None:
    """The corrections refused among `problems` (`corrections.<field>`), as one message about the
    form's corrections (`check_policy`); None: none."""
    corrections = {f.removeprefix("corrections."): m for f, m in problems.items() if f.startswith("corrections.")}
    named = words[0] if words else {}
    refused = [_policy_words(message, t, named or None) if message == _NOTHING_CORRECTABLE
               else f"{named.get(field, field)}: {_policy_words(message, t, named or None)}"
               for field, message in corrections.items()]
    return "; ".join(dict.fromkeys(refused)) or None


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
