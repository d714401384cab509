"""Which columns a data subject may have corrected (Art. 16), and what a correction must look like.

A rectification comes from the subject (or an agent on their behalf) and runs against the
controller's systems, so only what the policy names per column may change: a column without
`rectifiable` never does, whatever a correction's key says. The record's key and the column that
links a row to its parent never may (it would move records to someone else); an identity column or
one kept under a statutory hold may only with a stated reason (`why`), because changing it changes
who the records belong to or what an accounting document says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from policy.strict import StrictModel

if TYPE_CHECKING:
    from policy.model import Dataset, FieldRule, System

# Control characters (a CR/LF in a name would end up in letters and mail headers).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FORMATS = {
    "email": re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+"),
    "phone": re.compile(r"\+?[0-9][0-9 ()./-]{3,30}"),
    "postcode": re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]{1,11}"),
}
_FORMAT_WORDS = {
    "email": "an e-mail address",
    "phone": "a phone number (digits, spaces, + ( ) . / -)",
    "postcode": "a postcode (letters, digits, spaces and -)",
}


class Rectifiable(StrictModel):
    """A column a correction may set, and the shape a corrected value must have."""

    max_length: int = Field(ge=1, le=1000)
    format: Literal["text", "email", "phone", "postcode"] = "text"
    # Required on identity and held columns: why correcting it is safe.
    why: str | None = Field(None, min_length=10)

    def problem(self, value: str) -> str | None:
        """Why `value` cannot be this column's corrected value (no value quoted), or None."""
        if not value.strip():
            return "must not be empty"
        if len(value) > self.max_length:
            return f"must be at most {self.max_length} characters"
        if _CONTROL.search(value):
            return "must not contain line breaks or control characters"
        pattern = _FORMATS.get(self.format)
        if pattern is not None and not pattern.fullmatch(value):
            return f"must be {_FORMAT_WORDS[self.format]}"
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


def correction_problems(systems: Iterable[System], corrections: Mapping[str, str]) -> dict[str, str]:
    """`corrections.<key>` -> what is wrong, for every correction the policy does not allow as
    given: a key no rectifiable column answers to, or a value some column it sets refuses."""
    datasets = [d for system in systems for d in system.datasets]
    allowed = sorted({name for d in datasets for column, rule in d.fields.items() if rule.rectifiable
                      for name in (column, rule.identity) if name})
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
