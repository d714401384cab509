"""The privacy mailbox's policy (policy/mailbox.yaml): what an e-mail may bring, when a waiting
one alerts staff, and the phrases that suggest a request's type and language.

A suggestion is a hint for the agent, never a decision: the agent confirms or corrects it when
turning the message into a request."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import Field, field_validator

from dsrflow.i18n import without_accents
from policy.files import read_mapping
from policy.strict import StrictModel
from schemas.requests import RequestType
from schemas.vocabulary import Language

DEFAULT_FILE = Path(__file__).resolve().parent / "mailbox.yaml"
# Only the start of a long message is read for suggestions: the request is stated at the top.
_SCAN_CHARS = 5000


class MailLimits(StrictModel):
    message_bytes: int = Field(26_214_400, ge=1024)
    attachment_bytes: int = Field(10_485_760, ge=1)
    attachments: int = Field(20, ge=0)
    text_chars: int = Field(100_000, ge=100)


class MailboxPolicy(StrictModel):
    alert_after_working_days: int = Field(2, ge=0, le=30)
    date_tolerance_hours: int = Field(72, ge=0)
    limits: MailLimits = MailLimits()
    refused_extensions: frozenset[str] = frozenset()
    refused_content_types: frozenset[str] = frozenset()
    types: dict[RequestType, dict[Language, list[str]]] = {}
    languages: dict[Language, list[str]] = {}
    # The receiving mail servers (authserv-ids) whose Authentication-Results are believed
    # (dsrflow/domain/sender_authentication.py).
    authenticated_by: frozenset[str] = frozenset()

    @field_validator("refused_extensions", "refused_content_types")
    @classmethod
    def _lower(cls, value: frozenset[str]) -> frozenset[str]:
        return frozenset(v.lower().lstrip(".") for v in value)

    def refusal(self, filename: str | None, content_type: str) -> str | None:
        """Why an attachment is not kept because of its type, or None."""
        extensions = [part.lower() for part in (filename or "").split(".")[1:]]
        if any(ext in self.refused_extensions for ext in extensions):
            return f"refused type (.{next(e for e in extensions if e in self.refused_extensions)})"
        if content_type.lower() in self.refused_content_types:
            return f"refused type ({content_type.lower()})"
        return None

    def suggest(self, subject: str, text: str) -> Suggestion:
        return _suggest(self, f"{subject}\n{text[:_SCAN_CHARS]}")


@dataclass(frozen=True)
class Suggestion:
    type: RequestType | None
    language: Language | None


def _fold(text: str) -> str:
    """Lower case, curly apostrophes straightened, accents dropped: "Droit d’Accès" -> "droit d'acces"."""
    return without_accents(text.lower().replace("\u2019", "'"))


@cache
def _pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(_fold(phrase)) + r"(?!\w)")


def _suggest(policy: MailboxPolicy, text: str) -> Suggestion:
    folded = _fold(text)
    by_type: dict[RequestType, int] = {}
    by_language: dict[Language, int] = {}
    for kind, per_language in policy.types.items():
        for language, phrases in per_language.items():
            hits = sum(len(_pattern(p).findall(folded)) for p in phrases)
            if hits:
                by_type[kind] = by_type.get(kind, 0) + hits
                by_language[language] = by_language.get(language, 0) + 3 * hits  # a phrase says more than a word
    for language, words in policy.languages.items():
        hits = sum(len(_pattern(w).findall(folded)) for w in words)
        if hits:
            by_language[language] = by_language.get(language, 0) + hits
    # Ties go to the order of the policy file (and of the languages): stable, and stated there.
    order = list(policy.types)
    best_type = max(by_type, key=lambda k: (by_type[k], -order.index(k))) if by_type else None
    languages = list(Language)
    best_language = max(by_language, key=lambda lang: (by_language[lang], -languages.index(lang))) if by_language else None
    return Suggestion(best_type, best_language)


@cache
def load_mailbox_policy(path: Path = DEFAULT_FILE) -> MailboxPolicy:
    """The mailbox policy in `path`; a problem raises ValueError naming the file."""
    from pydantic import ValidationError

    try:
        return MailboxPolicy.model_validate(read_mapping(path))
    except ValidationError as exc:
        raise ValueError(f"{path}: {exc}") from None
