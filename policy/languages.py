"""The languages the controller writes to subjects in, and its policy's texts in each of them.

The policy is written in English. Every text of it that reaches a subject (a letter, the package's
summary, the portal) is listed in TRANSLATABLE; for each other language the controller supports,
`translations.<language>` gives each of those texts in that language, in the policy's own shape
(`remedies.gdpr.complaint`, `categories.account.purposes`). A translation is usually a file of its
own next to the policy (`translations: {nl: {file: connexeon.nl.yaml}}`), inlined when the policy
loads so that the policy's version covers it. A language whose translation misses a text, or
translates a path that is not a text for subjects, fails the load, naming the path: no letter
falls back to English half-way. (Texts of parts the policy leaves out are ignored, so a policy
derived from another can share its translation files.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, HttpUrl, TypeAdapter, ValidationError, model_validator

from policy.files import named_file
from policy.strict import StrictModel
from schemas.vocabulary import Language

SOURCE_LANGUAGE = Language.en

# Paths (dot-separated, `*` for any one key or list index) of the texts subjects read.
TRANSLATABLE: tuple[str, ...] = (
    "controller.address",
    "supervisory_authorities.*.name", "supervisory_authorities.*.address",
    "remedies.*.refusal_rule", "remedies.*.authority_title", "remedies.*.complaint",
    # `complaint_on_portal`'s words, or its whole paragraph in policy versions stored before those
    # (policy/remedies.py).
    "remedies.*.complaint_where_you_live", "remedies.*.complaint_on_portal", "remedies.*.complaint_on_portal.*",
    "remedies.*.judicial_heading", "remedies.*.judicial", "remedies.*.appeal.rule",
    "remedies.*.appeal.complaint_after_appeal", "remedies.*.appeal.complaint_without_appeal",
    "remedies.*.authority.name", "remedies.*.authority.address",
    "remedies.*.sale_opt_out.heading", "remedies.*.sale_opt_out.text",
    "rights.*",
    "categories.*.label", "categories.*.purposes.*",
    # A legal basis's words; the whole basis in policy versions stored before bases named their
    # article (policy/disclosure.py).
    "categories.*.legal_bases.*.basis", "categories.*.legal_bases.*",
    "categories.*.retention", "categories.*.source",
    "recipients.*.name", "recipients.*.role", "recipients.*.location", "recipients.*.safeguards",
    "automated_decisions.decisions", "automated_decisions.profiling.logic",
    "automated_decisions.profiling.significance",
    "statutory_holds.*.label", "statutory_holds.*.basis", "statutory_holds.*.law",
    "statutory_holds.*.later_periods.*.law", "statutory_holds.*.foreign_law",
    "systems.*.label", "systems.*.where", "systems.*.datasets.*.label", "systems.*.config.datasets.*.label",
    "systems.*.datasets.*.fields.*.rectifiable.label", "systems.*.config.labels.*",
)

# Paths a translation may give, not must: links to a page the controller publishes in each language.
# The CCPA's notice of the right to opt out of the sale or sharing (Cal. Code Regs. tit. 11 § 7013)
# is a disclosure that must be available in the languages the business ordinarily informs consumers
# in (§ 7003(b)(2)), which are the letters' own; a letter in French links to the notice in French
# where the translation gives it, to the policy's link otherwise (one page in every language).
PER_LANGUAGE_LINKS: tuple[str, ...] = ("remedies.*.sale_opt_out.link",)
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


class Languages(StrictModel):
    # The languages subjects may choose (the portal offers them; a request in another is refused).
    supported: list[Language] = Field(default_factory=lambda: [SOURCE_LANGUAGE], min_length=1)
    # A request that names none, and the portal for a browser that asks for none we support.
    default: Language = SOURCE_LANGUAGE
    # The controller's working language: staff alerts and the e-mails to processors; on the
    # console only its dates, the policy's texts and the names of countries and languages (and the
    # form parts it shares with the portal): the console's own words are English whatever this says.
    staff: Language = SOURCE_LANGUAGE

    @model_validator(mode="after")
    def _default_supported(self) -> Languages:
        if self.default not in self.supported:
            raise ValueError(f"default: {self.default.value!r} is not among the supported languages")
        if len(set(self.supported)) != len(self.supported):
            raise ValueError("supported: a language is listed twice")
        return self


def _leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, str(index)))
    else:
        yield path, value


def _patterns(paths: tuple[str, ...]) -> re.Pattern[str]:
    """`paths` as one expression, each `*` one key or index (no dot): matching each path against
    each pattern in turn was most of the time a policy took to load."""
    return re.compile("|".join(
        "(?:" + r"[^.]*".join(re.escape(part) for part in pattern.split("*")) + ")" for pattern in paths))


_TRANSLATABLE = _patterns(TRANSLATABLE)


_PER_LANGUAGE_LINKS = _patterns(PER_LANGUAGE_LINKS)


def _translatable(path: tuple[str, ...]) -> bool:
    return _TRANSLATABLE.fullmatch(".".join(path)) is not None


def _link(where: str, value: Any, language: str) -> None:
    """A translation's link (`PER_LANGUAGE_LINKS`) is an http(s) URL; ValueError names its path."""
    try:
        _HTTP_URL.validate_python(value)
    except ValidationError:
        raise ValueError(f"{where}: expected an http(s) URL of the page in {language}, "
                         f"or leave it out to link the policy's own") from None


def translatable_texts(content: dict[str, Any]) -> dict[str, str]:
    """The policy's texts for subjects: dotted path -> English text. Its translations are not
    walked: none of their paths is a text of the policy, and walking every translation's texts was
    most of a policy's load, once for each language."""
    return {".".join(path): value for path, value in _leaves({k: v for k, v in content.items() if k != "translations"})
            if isinstance(value, str) and _translatable(path)}


def check_translation(content: dict[str, Any], language: str, translation: Any) -> None:
    """A translation gives every text for subjects, and may give a link in its language
    (`PER_LANGUAGE_LINKS`), and nothing else; ValueError names the path."""
    where = f"translations.{language}"
    if not isinstance(translation, dict):
        raise ValueError(f"{where}: expected a mapping in the policy's shape")
    wanted = translatable_texts(content)
    given: dict[str, Any] = {}
    for path, value in _leaves(translation):
        dotted = ".".join(path)
        if _PER_LANGUAGE_LINKS.fullmatch(dotted):
            _link(f"{where}.{dotted}", value, language)
            continue
        if not _translatable(path):
            raise ValueError(f"{where}.{dotted}: not a text of the policy that subjects read "
                             f"(see TRANSLATABLE in policy/languages.py)")
        if dotted not in wanted:
            continue  # a text of a part this policy leaves out (a shared translation file)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}.{dotted}: expected the text in {language}")
        given[dotted] = value
    missing = sorted(set(wanted) - set(given))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ValueError(f"{where}: missing {shown}")


def translated(content: dict[str, Any], translation: dict[str, Any]) -> dict[str, Any]:
    """The policy's content with the translation's texts in place of the English ones."""
    if isinstance(content, dict):
        return {key: translated(value, translation[key]) if isinstance(translation, dict) and key in translation
                else value for key, value in content.items()}
    if isinstance(content, list):
        return [translated(value, translation[str(i)] if isinstance(translation, dict) else translation[i])
                if _has(translation, i) else value for i, value in enumerate(content)]
    return translation


def _has(translation: Any, index: int) -> bool:
    if isinstance(translation, list):
        return index < len(translation)
    return isinstance(translation, dict) and str(index) in translation


def inline_translation_files(content: dict, path: Path, shipped: Path) -> None:
    """Replace `translations.<language>: {file: ...}` by the file's content (next to the policy
    at `path`, else among the `shipped` ones), so that the stored policy, and so its version,
    holds every language."""
    translations = content.get("translations")
    if not isinstance(translations, dict):
        return
    for language, given in translations.items():
        if isinstance(given, dict) and set(given) == {"file"}:
            translations[language] = named_file(path, Path(str(given["file"])), f"translations.{language}.file",
                                                shipped)
