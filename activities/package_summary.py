"""The package's summary.html: the Art. 15(1) information about this subject, built from what the
package holds for them rather than from everything the policy could hold.

Per system, the categories found with their record counts and where each column came from;
purposes, legal bases, retention and source of those categories only; the recipients of those
categories, by name where the policy knows it (CJEU C-154/21) and otherwise by kind; and the
Art. 15(1)(h) statement on automated decisions and profiling as it applies to this subject.

It cites the law of the request's regime (activities/citations.py): the GDPR's or the UK GDPR's
articles (the right it answers, each legal basis's point of Art. 6(1), Art. 22), and none under a
law numbered otherwise, where the legal bases are given in the policy's words alone."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache, partial
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, select_autoescape

from activities.citations import citation, cite
from dsrflow.domain.references import short_reference
from dsrflow.i18n import (
    CORRECTION,
    DELETION,
    SOURCE_LANGUAGE,
    Translator,
    corrects,
    deletes,
    long_date,
    series,
    translations,
    worded,
)
from policy.disclosure import AutomatedDecisions, LegalBasis
from policy.model import Policy
from policy.systems import dataset_words, readable
from schemas.plain_text import entry_segment, shown_line
from schemas.vocabulary import Language

TEMPLATE_DIR = Path(__file__).with_name("templates") / "package"


def N_(message: str) -> str:
    """Marks a message for extraction; the template translates it when it renders."""
    return message


# The rights to erasure and to rectification, named among the subject's rights as the regime's law
# grants them (`render_summary`): "Deletion" and "Correction" where they are no GDPR rights.
_ERASURE = N_("Erasure")
_RECTIFICATION = N_("Rectification")
# Translated by the template (`_(label)`), in the language of the summary.
ORIGIN_LABELS = {
    "provided": N_("Provided by you"),
    "observed": N_("Observed from your use of our Website and Service"),
    "derived": N_("Derived by us from other data"),
    "inferred": N_("Inferred by us about you"),
}


@cache
def summary_environment(language: str) -> Environment:
    """The summary template, speaking `language`: `_()` and `{% trans %}` read its catalog
    (dsrflow/i18n), dates are written its way. Paragraphs in `{% trans %}` are trimmed, as in
    the letters."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html.j2"]),
        extensions=["jinja2.ext.i18n"],
    )
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]  # added by the i18n extension
    env.filters["longdate"] = partial(long_date, language=language)
    env.filters["series"] = partial(series, language=language)
    # `regime | cite("20")`: "Art. 20 GDPR", or "" where the regime's law is not the GDPR's.
    env.filters["cite"] = partial(cite, t=translations(language))
    # The request as its letters name it to the subject: its short reference, not the internal id.
    env.filters["shortid"] = short_reference
    env.globals["language"] = language
    return env


class FoundPart(Protocol):
    """What the summary needs of one (system, dataset, category) of the package."""

    @property
    def count(self) -> int: ...

    @property
    def origin_of(self) -> Mapping[str, str]:  # column -> origin
        ...

    def json_records(self) -> Iterable[bytes]: ...


def part_files(system: str, dataset: str, category: str) -> list[str]:
    base = "/".join(entry_segment(n) for n in (system, category, dataset))
    return [f"{base}.json", f"{base}.csv"]


# The longest column name the summary writes out: a processor chooses them.
COLUMN_SHOWN = 100


@dataclass
class _System:
    label: str
    parts: list[dict[str, Any]] = field(default_factory=list)


def _policy_order(policy: Policy, key: tuple[str, str, str]) -> tuple[str, str, int, str, str]:
    """Systems by label (a stored policy's mappings keep no order), each system's datasets in
    the order the policy lists them (parents first)."""
    system, dataset, category = key
    datasets = [d.name for d in policy.systems[system].datasets]
    return (policy.systems[system].label.casefold(), system,
            datasets.index(dataset) if dataset in datasets else len(datasets), dataset, category)


def _found(policy: Policy, parts: Mapping[tuple[str, str, str], FoundPart]) -> list[_System]:
    systems: dict[str, _System] = {}
    for (system, dataset, category), part in sorted(parts.items(), key=lambda p: _policy_order(policy, p[0])):
        found = systems.setdefault(system, _System(policy.systems[system].label))
        by_origin: dict[str, list[str]] = {}
        for column, origin in part.origin_of.items():
            # A processor's, or a SaaS API's, own column names where the policy lists none.
            by_origin.setdefault(origin, []).append(shown_line(column, COLUMN_SHOWN))
        found.parts.append({
            "dataset": dataset_words(policy.systems, system, dataset),
            "category": policy.categories[category].label if category in policy.categories else category,
            "records": part.count, "files": part_files(system, dataset, category),
            "obtained": [(ORIGIN_LABELS[o], columns) for o, columns in by_origin.items()],
        })
    return list(systems.values())


def _legal_basis(basis: LegalBasis, regime: str, t: Translator) -> str:
    """A legal basis after its point of Art. 6(1) in the regime's law ("Art. 6(1)(b) UK GDPR:
    performance of contract"), or in the policy's words alone where that law is not the GDPR's
    or the basis names no article."""
    cited = citation(regime, basis.article, t) if basis.article else None
    return t.gettext("%(label)s: %(value)s") % {"label": cited, "value": basis.basis} if cited else basis.basis


def _categories(policy: Policy, found: set[str], regime: str, t: Translator) -> list[dict[str, Any]]:
    """The categories found, their legal bases cited in the regime's law, and the statutes that
    keep some of their records (`kept_by_law`): the privacy policy's retention text says only
    "except information required for accounting", and Art. 15(1)(d) asks for the period where it
    is known (DPO audit: the erasure letter named 7 and 10 years, the package did not)."""
    return [{**category.model_dump(), "legal_bases": [_legal_basis(b, regime, t) for b in category.legal_bases],
             "kept_by_law": _kept_by_law(policy, name)}
            for name, category in ((name, policy.categories[name]) for name in sorted(found)
                                   if name in policy.categories)]


def _kept_by_law(policy: Policy, category: str) -> list[dict[str, str]]:
    """The statutory holds on datasets holding columns of `category` (label and law, which says
    the period), in the policy's order."""
    statutes = {dataset.hold.statute for system in policy.systems.values() for dataset in system.datasets
                if dataset.hold and any(rule.category == category for rule in dataset.fields.values())}
    return [{"label": hold.label, "law": hold.law} for key, hold in policy.statutory_holds.items() if key in statutes]


def _recipients(policy: Policy, systems: set[str], categories: set[str]) -> list[dict[str, Any]]:
    """The recipients of the categories found, and the processors running the systems found."""
    processors = {policy.systems[s].recipient for s in systems}
    chosen = []
    for key, recipient in policy.recipients.items():
        theirs = categories & set(recipient.categories)
        if not theirs and key not in processors:
            continue
        chosen.append({
            "name": recipient.identity or recipient.name, "named": recipient.identity is not None,
            "kind": recipient.name, "role": recipient.role,
            "categories": sorted(policy.categories[c].label for c in theirs),
            "location": recipient.location, "safeguards": recipient.safeguards,
        })
    return sorted(chosen, key=lambda r: (not r["named"], r["name"]))


def _profiling(statement: AutomatedDecisions | None, parts: Mapping[tuple[str, str, str], FoundPart],
               kind: str) -> dict[str, Any] | None:
    """How the policy's profiling applies to this subject, read from the records of theirs that
    the package holds: no record, no profile; an objection recorded, no profile either;
    otherwise the profile, with its result when the package holds it (an access package does,
    a portability package leaves inferred data out)."""
    profiling = statement.profiling if statement else None
    if profiling is None:
        return None
    records = [json.loads(line) for (system, dataset, _), part in parts.items()
               if (system, dataset) == (profiling.system, profiling.dataset) for line in part.json_records()]
    if not records:
        return {"status": "no_record"}
    objections = [r[profiling.objection_column] for r in records if profiling.objection_column in r]
    if objections and all(objections):
        return {"status": "objected"}
    results = sorted({f"{readable(column)}: {r[column]}" for r in records
                      for column in profiling.columns if r.get(column) is not None})
    return {"status": "profiled", "logic": profiling.logic, "significance": profiling.significance,
            "results": results, "portability": kind == "portability"}


def render_summary(policy: Policy, parts: Mapping[tuple[str, str, str], FoundPart], *, request_id: str,
                   kind: str, generated_on: date | str, regime: str, country: str,
                   processor_files: Sequence[Mapping[str, Any]] = (),
                   missing: Sequence[Mapping[str, str]] = (),
                   language: str = SOURCE_LANGUAGE) -> str:
    """The summary, in `language` (the policy's texts are shown as `policy` words them: pass the
    policy in that language); `processor_files` and `missing` are what processors without an API
    sent, or did not (activities/processor_exports.py). `generated_on`: a date, or its ISO form."""
    if isinstance(generated_on, str):
        generated_on = date.fromisoformat(generated_on)
    # A processor that sent files holds data of the subject's: its recipient is listed too.
    systems = {system for system, _, _ in parts} | {f["system"] for f in processor_files}
    categories = {category for _, _, category in parts}
    return summary_environment(Language(language)).get_template("summary.html.j2").render(
        controller=policy.controller, request_id=request_id, kind=kind, regime=regime, generated_on=generated_on,
        systems=_found(policy, parts),
        categories=_categories(policy, categories, regime, translations(language)),
        recipients=_recipients(policy, systems, categories),
        decisions=policy.automated_decisions.decisions if policy.automated_decisions else None,
        profiling=_profiling(policy.automated_decisions, parts, kind),
        rights=policy.rights, remedies=policy.remedies_for(regime, country),
        # The rights' names as the regime's law grants them ("Deletion" where it is no GDPR erasure);
        # the rest of the summary keeps the language's usual words.
        erasure_name=worded(language, DELETION if deletes(regime) else None).gettext(_ERASURE),
        rectification_name=worded(language, CORRECTION if corrects(regime) else None).gettext(_RECTIFICATION),
        processor_files=processor_files, missing=missing)
