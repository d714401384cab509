"""The systems that hold personal data, as the policy declares them: each system's connector and
configuration, its datasets (tables), and each column's category, origin, erasure rule and whether a
correction may change it (Art. 16, with the checks a correction must pass)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any, Literal, Self

from pydantic import Field, ValidationError, model_validator

from dsrflow.i18n import without_accents
from policy.disclosure import ORIGINS, Origin
from policy.http_model import HttpConfig
from policy.keeping import DatasetHold
from policy.rectification import Rectifiable
from policy.strict import IDENT, StrictModel
from schemas.vocabulary import ConnectorKind


class FieldRule(StrictModel):
    """One column: its category, where it comes from, how erasure treats it."""

    category: str
    origin: Origin | None = None  # default: the dataset's
    erase: Literal["null", "hash", "fixed", "keep"] = "null"
    value: str | int | None = None  # for erase: fixed
    identity: Literal["email", "name", "customer_id"] | None = None
    # Kept in a record held under a statutory obligation (the fields the obligation needs);
    # every other field is erased by its rule when the record is minimised.
    held: bool = False
    # Art. 16: set only on columns a correction may change (policy/rectification.py).
    rectifiable: Rectifiable | None = None

    @model_validator(mode="after")
    def _fixed_has_value(self) -> Self:
        if self.erase == "fixed" and self.value is None:
            raise ValueError("erase: fixed needs a value")
        return self


class Reference(StrictModel):
    """Rows of this dataset belong to the subject through a parent dataset's rows."""

    dataset: str
    column: str  # the foreign-key column in this dataset
    parent_column: str | None = None  # the parent's column it points at; default the parent's key


class Dataset(StrictModel):
    name: str = Field(pattern=IDENT)
    # What subjects read for it (letters, the package's summary), translated like every such
    # text (policy/languages.py); without one, its name with spaces ("support requests").
    label: str | None = None
    table: str = Field(pattern=IDENT)
    key: str = Field("id", pattern=IDENT)
    identify: dict[Literal["email", "customer_id", "name"], str] = Field(default_factory=dict)
    via: Reference | None = None
    erasure: Literal["delete", "anonymise"] = "delete"
    restricted_column: str | None = Field(None, pattern=IDENT)
    # Column updates that carry out an objection, per scope, e.g.
    # {direct_marketing: {marketing_opt_in: false}}.
    objection_updates: dict[Literal["direct_marketing", "profiling", "legitimate_interest"], dict[str, Any]] = Field(
        default_factory=dict
    )
    # Where the columns come from, unless a column says otherwise (`fields.<column>.origin`).
    origin: Origin | None = None
    fields: dict[str, FieldRule]
    hold: DatasetHold | None = None

    @model_validator(mode="after")
    def _found_somehow(self) -> Self:
        if not self.identify and self.via is None:
            raise ValueError("needs `identify` (subject identity -> column) or `via` (a parent dataset)")
        for column in [*self.identify.values(), *self.fields]:
            if not re.fullmatch(IDENT, column):
                raise ValueError(f"{column!r} is not a plain column name")
        for column, rule in self.fields.items():
            if rule.origin is None and self.origin is None:
                raise ValueError(f"fields.{column}.origin: dataset {self.name!r} sets no origin, so the "
                                 f"column needs one of {', '.join(ORIGINS)}")
        check_rectifiable(self)
        return self

    def origin_of(self, column: str) -> Origin:
        origin = self.fields[column].origin or self.origin
        assert origin is not None  # checked at load
        return origin


class System(StrictModel):
    """A system holding personal data and how to reach it."""

    label: str
    # The system as a letter names it after a verb, its preposition included ("in our CRM", "at our
    # survey service provider"): a label after a bare "in" reads wrong ("in Survey service
    # provider", "dans Prestataire de services d'enquêtes"). Translated like the label; without one,
    # letters say a neutral phrase around the label (activities/letter_systems.py `system_where`).
    where: str | None = None
    connector: ConnectorKind
    config: dict[str, Any] = Field(default_factory=dict)
    recipient: str | None = None  # the Recipient this system is, for Art. 19 notices
    datasets: list[Dataset] = Field(default_factory=list)
    # Async processors: how long to wait for completion before the task needs attention.
    completion_timeout_days: int = Field(14, ge=1)

    @model_validator(mode="after")
    def _datasets(self) -> Self:
        if self.where is not None:
            where_problem = check_where(self.where)
            if where_problem:
                raise ValueError(f"where: {where_problem}")
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError("dataset names must be unique within a system")
        for dataset in self.datasets:
            if dataset.via and dataset.via.dataset not in names:
                raise ValueError(f"dataset {dataset.name!r} refers to unknown dataset {dataset.via.dataset!r}")
        if self.connector == "sql" and not self.datasets:
            raise ValueError("a sql system needs datasets")
        if self.connector == "http":
            self.http_config()
        if self.connector == "opendsr":
            marked = {"config.origin": self.config.get("origin"),
                      **{f"config.origins.{d}": o for d, o in (self.config.get("origins") or {}).items()}}
            for where, origin in marked.items():
                if origin is not None and origin not in ORIGINS:
                    raise ValueError(f"{where}: {origin!r} is not an origin ({', '.join(ORIGINS)})")
            labels = self.config.get("labels") or {}
            if not isinstance(labels, dict) or not all(isinstance(v, str) and v.strip() for v in labels.values()):
                raise ValueError("config.labels: give each dataset the processor reports the words subjects "
                                 "read for it ({dataset: words})")
        return self

    def dataset_label(self, dataset: str) -> str:
        """The words subjects read for one of this system's datasets."""
        return self._dataset_labels.get(dataset) or readable(dataset)

    @cached_property
    def _dataset_labels(self) -> dict[str, str]:
        # An http system's datasets are declared in its configuration (policy/http_model.py),
        # which is validated anew on each `http_config()`: once per system, not per line of a letter.
        if self.connector == "http":
            return {name: d.label for name, d in self.http_config().datasets.items() if d.label}
        if self.connector == "opendsr":  # named by the processor's answers, worded by the policy
            return {str(name): label for name, label in (self.config.get("labels") or {}).items()}
        return {d.name: d.label for d in self.datasets if d.label}

    def http_config(self) -> HttpConfig:
        """An http system's configuration, validated (unknown fields and bad templates fail here,
        naming their path under `config`)."""
        if "file" in self.config:
            raise ValueError("config.file: load the policy with load_policy, which inlines the file")
        try:
            return HttpConfig.model_validate(self.config)
        except ValidationError as exc:
            raise ValueError("; ".join(
                f"config.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())) from None


_WHERE_END = re.compile(r"[.,;:!?]$")


def check_where(where: str) -> str | None:
    """What is wrong with a system's `where` (None: nothing). It is set inside a sentence, after a
    verb and before the rest ("Our automated work in our CRM stopped ..."), in lists too ("in our CRM
    and at our survey service provider"): so words on one line, starting with its preposition in
    lower case, and no full stop or comma of its own."""
    if not where.strip():
        return "expected the words a letter names the system by after a verb, e.g. 'in our CRM'"
    if where != where.strip() or "\n" in where or "  " in where:
        return f"{where!r}: one line, without leading, trailing or doubled spaces"
    if not where[0].islower():
        return (f"{where!r}: it is set mid-sentence, so it starts with its preposition in lower case "
                f"(e.g. 'in our CRM', 'at our survey service provider')")
    if len(where.split()) < 2:
        return (f"{where!r}: a preposition and the system, e.g. 'in our CRM' or 'at our survey service "
                f"provider'; letters add nothing before it")
    if _WHERE_END.search(where):
        return f"{where!r}: no punctuation at its end: the sentence goes on after it"
    return None


def check_rectifiable(dataset: Dataset) -> None:
    """At policy load: a key or link column is never rectifiable; an identity or held one only
    with a reason. The message names the column."""
    protected = {dataset.key: "the dataset's key"}
    if dataset.via:
        protected[dataset.via.column] = f"the column linking rows to dataset {dataset.via.dataset!r}"
    identities = set(dataset.identify.values())
    for column, rule in dataset.fields.items():
        if rule.rectifiable is None:
            continue
        if column in protected:
            raise ValueError(f"fields.{column}.rectifiable: {column!r} is {protected[column]}; it can never "
                             f"be rectified (records would move to another subject)")
        sensitive = ("an identity column" if rule.identity or column in identities
                     else "kept under a statutory hold" if rule.held else None)
        if sensitive and not rule.rectifiable.why:
            raise ValueError(f"fields.{column}.rectifiable: {column!r} is {sensitive}; declare it rectifiable "
                             f"only with `why` (the reason correcting it is safe)")


def columns_for(dataset: Dataset, key: str) -> list[tuple[str, FieldRule]]:
    """The rectifiable columns a correction key sets in this dataset: the column of that name, or
    every column declaring that identity (`name` sets each column holding the subject's name)."""
    return [(column, rule) for column, rule in dataset.fields.items()
            if rule.rectifiable is not None and (column == key or rule.identity == key)]


def corrections_by_dataset(datasets: Iterable[Dataset], corrections: Mapping[str, str],
                           ) -> tuple[dict[str, dict[str, str]], list[str]]:
    """What a correction request sets in these datasets: dataset -> {column: value}, for the
    columns each key sets that accept its value (in the datasets' order); and the keys that set
    nothing here."""
    plans: dict[str, dict[str, str]] = {}
    used: set[str] = set()
    for dataset in datasets:
        updates = {}
        for key, value in corrections.items():
            for column, rule in columns_for(dataset, key):
                assert rule.rectifiable is not None
                if rule.rectifiable.problem(value) is None:
                    updates[column] = value
                    used.add(key)
        if updates:
            plans[dataset.name] = updates
    return plans, sorted(set(corrections) - used)


def correction_problems(systems: Iterable[System], corrections: Mapping[str, str]) -> dict[str, str]:
    """`corrections.<key>` -> what is wrong, for every correction the policy does not allow as
    given: a key no rectifiable column answers to, or a value some column it sets refuses."""
    systems = list(systems)
    datasets = [d for system in systems for d in system.datasets]
    allowed = sorted(correction_words(systems))
    problems: dict[str, str] = {}
    for key, value in corrections.items():
        columns = [rule for d in datasets for _, rule in columns_for(d, key)]
        if not columns:
            problems[f"corrections.{key[:63]}"] = (
                "is not something we can correct on request; ask for: " + ", ".join(allowed)
                if allowed else "nothing can be corrected on request here")
            continue
        for rule in columns:
            assert rule.rectifiable is not None
            if problem := rule.rectifiable.problem(value):
                problems[f"corrections.{key}"] = problem
                break
    return problems


def correction_words(systems: Iterable[System]) -> dict[str, str]:
    """Each key a correction may name (a rectifiable column, or the identity it holds) -> the
    words subjects read for it: its first column's `rectifiable.label`, else the key in words."""
    words: dict[str, str] = {}
    for dataset in (d for system in systems for d in system.datasets):
        for column, rule in dataset.fields.items():
            if rule.rectifiable is None:
                continue
            for key in filter(None, (column, rule.identity)):
                if rule.rectifiable.label and (key not in words or words[key] == readable(key)):
                    words[key] = rule.rectifiable.label
                words.setdefault(key, readable(key))
    return words


def _as_typed(words: str) -> str:
    """Words for a field as they compare: case, accents, underscores and spacing aside."""
    return " ".join(without_accents(words).replace("_", " ").casefold().split())


def correction_key(typed: str, *languages: Mapping[str, str]) -> str:
    """The key a subject means by `typed` ("Téléphone", "first name", "phone"): a key itself, or its
    words in one of `languages` (`correction_words` of the policy in each language the subject
    may write in, theirs first). Words that name no key come back as typed, to be refused."""
    wanted = _as_typed(typed)
    for words in languages:
        for key, label in words.items():
            if wanted in (_as_typed(key), _as_typed(label)):
                return key
    return typed.strip()


def readable(identifier: str) -> str:
    """An identifier as words, where the policy gives none: a dataset ("support_requests"), or a
    column a summary names ("risk_score")."""
    return identifier.replace("_", " ")


def dataset_words(systems: Mapping[str, System], system: str, dataset: str) -> str:
    """What subjects read for `dataset` of `system`, also of a system a later policy dropped."""
    return systems[system].dataset_label(dataset) if system in systems else readable(dataset)
