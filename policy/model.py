"""The policy's shape, validated at load so a mistake names the file, the path and the problem."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from dsrflow.domain.deadlines import takes_complaints
from policy.controller import Controller, Defaults
from policy.disclosure import AutomatedDecisions, Category, Profiling, Recipient
from policy.exports import ProcessorExports
from policy.files import read_mapping
from policy.http_model import inline_http_files
from policy.http_references import check_http_references
from policy.keeping import RetentionRule, StatutoryHold
from policy.languages import SOURCE_LANGUAGE, Languages, check_translation, inline_translation_files, translated
from policy.remedies import Authority, Remedies, check_translated
from policy.restriction import RestrictionPolicy
from policy.strict import IDENT, StrictModel
from policy.systems import System, check_where
from schemas.countries import country_code
from schemas.requests import RequestType
from schemas.vocabulary import Language, Regime

DEFAULT_POLICY = Path(__file__).with_name("connexeon.yaml")


class PolicyError(Exception):
    """The policy file is unreadable or invalid; the message names file and path."""


class Verification(StrictModel):
    max_attempts: int = Field(5, ge=1, le=20)
    # Codes one request may have (the first, the reminder's, the subject's resends): each resend
    # starts `max_attempts` afresh, so without a cap, clients enough could guess through the
    # code space. Staff may send more.
    max_codes: int = Field(5, ge=2, le=20)
    reminder_after_days: int = Field(2, ge=1)
    expires_after_days: int = Field(7, ge=1)
    code_digits: int = Field(6, ge=6, le=10)


def _approval_required_by_default() -> list[RequestType | Literal["attested_erasure", "appeal"]]:
    return [RequestType.rectification, "attested_erasure", "appeal"]


class Policy(StrictModel):
    controller: Controller
    defaults: Defaults = Defaults()
    verification: Verification = Verification()
    # Staff warnings, N days before the current due date (each becomes alert kind due_in_N_days).
    deadline_warnings_days: tuple[Annotated[int, Field(ge=1, le=90)], ...] = (7, 2)
    # A request step that failed, or kept failing this long, flags the request for staff.
    attention_after_minutes: int = Field(15, ge=1, le=24 * 60)
    # The languages subjects are written to in, and the policy's texts in each (policy/languages.py).
    languages: Languages = Languages()
    translations: dict[Language, dict[str, Any]] = Field(default_factory=dict)
    # By the country each supervises, its ISO 3166-1 code as `country_code` writes it.
    supervisory_authorities: dict[str, Authority]
    # Per regime, what a refusal in whole or in part tells the subject (policy/remedies.py).
    remedies: dict[Regime, Remedies]
    rights: dict[str, str] = Field(default_factory=dict)
    categories: dict[str, Category] = Field(default_factory=dict)
    recipients: dict[str, Recipient] = Field(default_factory=dict)
    systems: dict[str, System] = Field(default_factory=dict)
    # Days an access package download link stays valid.
    package_link_days: int = Field(7, ge=1, le=90)
    # What processors without an API may upload as their export for an access package.
    processor_exports: ProcessorExports = ProcessorExports()
    # What compliance approves first: for access and portability the response (with its
    # package) before it is sent; for the types that change systems (rectification, erasure, ...)
    # the change before any system is touched. `attested_erasure`: an erasure whose identity staff
    # attested (no verification by the subject). `appeal`: an appeal or a complaint to us, of any
    # type, which asks us to reconsider a refusal: run unseen, it carried out what compliance had
    # refused. On unless a policy says otherwise.
    approval_required_for: list[RequestType | Literal["attested_erasure", "appeal"]] = Field(
        default_factory=_approval_required_by_default)
    statutory_holds: dict[str, StatutoryHold] = Field(default_factory=dict)
    retention: list[RetentionRule] = Field(default_factory=list)
    # Art. 15(1)(h): what access packages say about automated decisions and profiling.
    automated_decisions: AutomatedDecisions | None = None
    restriction: RestrictionPolicy = RestrictionPolicy()

    @field_validator("supervisory_authorities")
    @classmethod
    def _authority_countries(cls, value: dict[str, Authority]) -> dict[str, Authority]:
        # Looked up by a request's stored country, which is always written as `country_code`
        # writes it: an authority under any other spelling would never be found.
        for key in value:
            try:
                code = country_code(key)
            except ValueError as exc:
                raise ValueError(f"key {key!r}: {exc}") from None
            if code != key:
                raise ValueError(f"key {key!r}: write it as {code}")
        return value

    @model_validator(mode="after")
    def _references(self) -> Self:
        missing = [regime.value for regime in Regime if regime not in self.remedies]
        if missing:
            raise ValueError(f"remedies: no entry for regime(s) {', '.join(missing)}: a refusal "
                             f"under them could not name the subject's remedies")
        others = [c for c in self.supervisory_authorities if self._authority_where_you_live(c)]
        for regime, remedies in self.remedies.items():
            if remedies.appeal and remedies.appeal.answer_days is not None and not takes_complaints(regime):
                raise ValueError(f"remedies.{regime.value}.appeal.answer_days: an appeal under {regime.value} is "
                                 f"answered in the days its law sets; only a complaint to us (uk_gdpr) has our "
                                 f"own target")
            if remedies.appeal and remedies.appeal.progress_days is not None and not takes_complaints(regime):
                raise ValueError(f"remedies.{regime.value}.appeal.progress_days: an appeal under {regime.value} "
                                 f"gets no progress letters; only a complaint to us (uk_gdpr) does")
            if remedies.sells_or_shares and regime != Regime.ccpa:
                raise ValueError(f"remedies.{regime.value}.sells_or_shares: the CCPA's question (Cal. Code Regs. "
                                 f"tit. 11 § 7022(f)(4)); set it under remedies.ccpa")
            if others and remedies.authority is None and remedies.complaint_where_you_live is None:
                raise ValueError(
                    f"remedies.{regime.value}.complaint_where_you_live: needed, since supervisory_authorities "
                    f"names {', '.join(others)} besides {self.defaults.country}: a subject there is told of "
                    f"their own authority, which `complaint` must not introduce as the one competent for us")
        for name, system in self.systems.items():
            if not re.fullmatch(IDENT, name):
                raise ValueError(f"system name {name!r} must be lower-case letters, digits and _")
            if system.recipient and system.recipient not in self.recipients:
                raise ValueError(f"systems.{name}.recipient: unknown recipient {system.recipient!r}")
            names = {d.name for d in system.datasets}
            for dataset in system.datasets:
                hold = dataset.hold
                where = f"systems.{name}.datasets.{dataset.name}.hold"
                if hold and hold.statute not in self.statutory_holds:
                    raise ValueError(f"{where}.statute: unknown statutory hold {hold.statute!r}")
                if hold and hold.through and hold.through not in names:
                    raise ValueError(f"{where}.through: unknown dataset {hold.through!r}")
                for column in (hold.date_column or []) if hold else []:
                    if column not in dataset.fields:
                        raise ValueError(f"{where}.date_column: unknown column {column!r} "
                                         f"(not among the fields of dataset {dataset.name!r})")
                for column, rule in dataset.fields.items():
                    if rule.category not in self.categories:
                        raise ValueError(
                            f"systems.{name}.datasets.{dataset.name}.fields.{column}: "
                            f"unknown category {rule.category!r}"
                        )
            if system.connector == "http":
                check_http_references(name, system.http_config(), statutes=self.statutory_holds,
                                      categories=self.categories, systems=self.systems)
        for name, recipient in self.recipients.items():
            unknown = set(recipient.categories) - set(self.categories)
            if unknown:
                raise ValueError(f"recipients.{name}.categories: unknown {sorted(unknown)}")
        named: set[str] = set()
        for index, retention_rule in enumerate(self.retention):
            if retention_rule.name in named:
                raise ValueError(f"retention.{index}.name: {retention_rule.name!r} is used by an earlier rule")
            named.add(retention_rule.name)
            self._check_retention(f"retention.{index}", retention_rule)
        if self.automated_decisions and self.automated_decisions.profiling:
            self._check_profiling(self.automated_decisions.profiling)
        return self

    def _check_profiling(self, profiling: Profiling) -> None:
        where = "automated_decisions.profiling"
        system = self.systems.get(profiling.system)
        if system is None:
            raise ValueError(f"{where}.system: unknown system {profiling.system!r}")
        dataset = next((d for d in system.datasets if d.name == profiling.dataset), None)
        if dataset is None:
            raise ValueError(f"{where}.dataset: unknown dataset {profiling.dataset!r} in system {profiling.system!r}")
        for column in [*profiling.columns, *filter(None, [profiling.objection_column])]:
            if column not in dataset.fields:
                raise ValueError(f"{where}: unknown column {column!r} (not among the fields of dataset "
                                 f"{dataset.name!r})")
        for column in profiling.columns:
            if dataset.origin_of(column) not in ("derived", "inferred"):
                raise ValueError(f"{where}.columns: {column!r} is a profile's result, so its origin must be "
                                 f"derived or inferred, not {dataset.origin_of(column)!r}")

    def _check_retention(self, where: str, rule: RetentionRule) -> None:
        system = self.systems.get(rule.system)
        if system is None:
            raise ValueError(f"{where}.system: unknown system {rule.system!r}")
        if system.connector != "sql":
            raise ValueError(f"{where}.system: {rule.system!r} is a {system.connector} system; "
                             f"retention rules need a sql system's datasets")
        datasets = {d.name: d for d in system.datasets}
        dataset = datasets.get(rule.dataset)
        if dataset is None:
            raise ValueError(f"{where}.dataset: unknown dataset {rule.dataset!r} in system {rule.system!r}")
        for i, source in enumerate(rule.last_activity):
            owner = dataset
            if source.dataset is not None:
                referring = datasets.get(source.dataset)
                if referring is None or referring.via is None or referring.via.dataset != dataset.name:
                    raise ValueError(f"{where}.last_activity.{i}.dataset: {source.dataset!r} is not a "
                                     f"dataset of {rule.system!r} that refers to {dataset.name!r}")
                owner = referring
            if source.column not in owner.fields:
                raise ValueError(f"{where}.last_activity.{i}.column: unknown column {source.column!r} "
                                 f"(not among the fields of dataset {owner.name!r})")
        for i, column in enumerate(rule.only_where_set or []):
            if column not in dataset.fields:
                raise ValueError(f"{where}.only_where_set.{i}: unknown column {column!r} "
                                 f"(not among the fields of dataset {dataset.name!r})")
        for i, name in enumerate(rule.systems or []):
            if name not in self.systems:
                raise ValueError(f"{where}.systems.{i}: unknown system {name!r}")
        if rule.action == "erase_subject" and "email" not in dataset.identify:
            raise ValueError(f"{where}.dataset: erase_subject needs a dataset that identifies "
                             f"subjects by e-mail; {dataset.name!r} does not")
        if rule.action != "delete_rows":
            return
        # Bulk removal is not hold-aware: it may not touch records a statute makes us keep.
        children = {d.name: [c for c in system.datasets if c.via and c.via.dataset == d.name]
                    for d in system.datasets}
        reached, todo = [], [dataset]
        while todo:
            current = todo.pop()
            reached.append(current)
            if rule.categories is None:
                todo.extend(children[current.name])
        for current in reached:
            if current.hold is not None:
                raise ValueError(f"{where}.action: delete_rows would reach dataset {current.name!r}, "
                                 f"which is under statutory hold {current.hold.statute!r}; use "
                                 f"erase_subject (erasure is hold-aware)")
        if rule.categories is not None:
            unknown = sorted(set(rule.categories) - set(self.categories))
            if unknown:
                raise ValueError(f"{where}.categories: unknown {unknown}")
            if not any(f.category in rule.categories and f.erase != "keep" for f in dataset.fields.values()):
                raise ValueError(f"{where}.categories: no field of dataset {dataset.name!r} in "
                                 f"{rule.categories} is erased (all are `keep`): the rule would change nothing")

    def approval_required(self, request_type: RequestType, attested_by_staff: bool, *, appeal: bool = False) -> bool:
        """Whether compliance approves this request (see approval_required_for); `appeal`: it
        appeals (or complains about) a refused request."""
        cases = self.approval_required_for
        return request_type in cases or (appeal and "appeal" in cases) or (
            request_type == RequestType.erasure and attested_by_staff and "attested_erasure" in cases)

    def system_label(self, system: str) -> str:
        """A system as letters and pages name it: its label, or its name where this policy version
        does not know it (a system a later version added or an earlier one had)."""
        return self.systems[system].label if system in self.systems else system

    def system_where(self, system: str) -> str | None:
        """A system as letters name it after a verb ("in our CRM"), where the policy gives it
        (`systems.<name>.where`); None: letters say their own phrase around its label."""
        return self.systems[system].where if system in self.systems else None

    def authority_for(self, country: str) -> Authority:
        return self.supervisory_authorities.get(country) or self.supervisory_authorities[self.defaults.country]

    def complaint_days(self, regime: str) -> int | None:
        """Our target in days for a complaint's outcome under `regime` (UK GDPR, DPA 2018 s. 164A:
        `remedies.<regime>.appeal.answer_days`); None: the default (dsrflow/domain/deadlines.py)."""
        appeal = self.remedies[Regime(regime)].appeal
        return appeal.answer_days if appeal else None

    def complaint_progress_days(self, regime: str) -> int | None:
        """How often a complaint under `regime` undecided gets a progress letter, in days from its
        receipt (DPA 2018 s. 164A(5)(b): `remedies.<regime>.appeal.progress_days`); None: never."""
        appeal = self.remedies[Regime(regime)].appeal
        return appeal.progress_days if appeal and takes_complaints(regime) else None

    def remedies_for(self, regime: str, country: str) -> Remedies:
        """The remedies of a request under `regime` from a subject in `country`, its authority
        named (a GDPR request's: the one of the subject's country where the policy lists it)."""
        remedies = self.remedies[Regime(regime)]
        if remedies.authority is None:
            update: dict[str, Any] = {"authority": self.authority_for(country)}
            if self._authority_where_you_live(country) and remedies.complaint_where_you_live:
                update["complaint"] = remedies.complaint_where_you_live
            remedies = remedies.model_copy(update=update)
        return remedies

    def _authority_where_you_live(self, country: str) -> bool:
        """Whether a subject in `country` is told of their own country's authority, not ours."""
        return country != self.defaults.country and country in self.supervisory_authorities


class LoadedPolicy(BaseModel):
    """A policy with its version: the sha256 of its canonical JSON content."""

    model_config = ConfigDict(frozen=True)

    version: str
    policy: Policy
    content: dict[str, Any]
    _in_language: dict[str, Policy] = PrivateAttr(default_factory=dict)

    def in_language(self, language: str) -> Policy:
        """The policy with its texts for subjects in `language` (checked complete at load)."""
        if language == SOURCE_LANGUAGE or language not in self.policy.translations:
            return self.policy
        if language not in self._in_language:
            content = {k: v for k, v in self.content.items() if k != "translations"}
            self._in_language[language] = Policy.model_validate(
                translated(content, self.policy.translations[Language(language)]))
        return self._in_language[language]

    @property
    def default_country(self) -> str:
        return self.policy.defaults.country

    @property
    def default_language(self) -> str:
        return self.policy.languages.default.value


def _version(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_policy(content: dict[str, Any], source: str = "<policy>") -> LoadedPolicy:
    try:
        # A policy built in code (tests, tools) may still name the shipped translation files.
        inline_translation_files(content, DEFAULT_POLICY, DEFAULT_POLICY.parent)
    except ValueError as exc:
        raise PolicyError(f"{source}: {exc}") from None
    try:
        policy = Policy.model_validate(content)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()
        )
        raise PolicyError(f"{source}: {problems}") from None
    try:
        _check_translations(policy, content)
    except ValueError as exc:
        raise PolicyError(f"{source}: {exc}") from None
    return LoadedPolicy(version=_version(content), policy=policy, content=content)


def _check_translations(policy: Policy, content: dict) -> None:
    """Each supported language but English has a complete translation; no other has one."""
    for language in policy.translations:
        if language not in policy.languages.supported or language == SOURCE_LANGUAGE:
            raise ValueError(f"translations.{language.value}: not a supported language other than "
                             f"{SOURCE_LANGUAGE.value} (languages.supported)")
    for language in policy.languages.supported:
        if language == SOURCE_LANGUAGE:
            continue
        if language not in policy.translations:
            raise ValueError(f"translations.{language.value}: missing; languages.supported lists it")
        check_translation(content, language.value, policy.translations[language])
        # Checked as the policy's own are (System), naming the translation's path: the translated
        # policy is only validated when a letter in that language is first written.
        for name, system in (policy.translations[language].get("systems") or {}).items():
            where = system.get("where") if isinstance(system, dict) and name in policy.systems else None
            if isinstance(where, str) and (problem := check_where(where)):
                raise ValueError(f"translations.{language.value}.systems.{name}.where: {problem}")
        # Texts derived from others (the portal's words of a complaint) hold in each language too.
        check_translated(translated(content.get("remedies", {}), policy.translations[language].get("remedies", {})),
                         language.value)


def load_policy(path: Path | None = None) -> LoadedPolicy:
    """The policy file in force (checked whole); a request's stored version is `parse_policy`'s."""
    path = path or DEFAULT_POLICY
    try:
        content = read_mapping(path)
        inline_http_files(content, path, DEFAULT_POLICY.parent)
        inline_translation_files(content, path, DEFAULT_POLICY.parent)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None
    loaded = parse_policy(content, str(path))
    _check_recipients_reached(loaded.policy, str(path))
    return loaded


def _check_recipients_reached(policy: Policy, source: str) -> None:
    """Art. 19 GDPR and CCPA regulations § 7022(b)(2): every recipient is told of an erasure,
    rectification or restriction, and only a system's task tells it. Checked on the file in
    force, not on the versions requests stored before the rule: those still load for them."""
    reached = {system.recipient for system in policy.systems.values()}
    for name, recipient in policy.recipients.items():
        if name not in reached and not recipient.hosts_our_systems:
            raise PolicyError(
                f"{source}: recipients.{name}: no system names it as its recipient, so no erasure, rectification "
                f"or restriction would reach it (Art. 19 GDPR): add a system for it (a processor without an API: "
                f"connector manual_email), or set hosts_our_systems: true if it only hosts our systems")
