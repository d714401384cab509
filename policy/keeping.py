"""How long the controller keeps data, as its policy says: the legal obligations to keep records
(statutory holds, Art. 17(3)(b) GDPR), how each applies to a dataset, and the retention periods
the daily sweep applies."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self, get_args

from pydantic import Field, field_validator, model_validator

from policy.strict import IDENT, StrictModel

# The regimes whose law names a legal obligation's article (Art. 6(1)(c), 17(3)(b)) and asks whose
# law it must be (Art. 6(3)): the GDPR's and the UK GDPR's.
ArticleRegime = Literal["gdpr", "uk_gdpr"]
_ARTICLE_REGIMES: tuple[ArticleRegime, ...] = get_args(ArticleRegime)


class HoldPeriod(StrictModel):
    """A retention period that a later law set for documents of `from_year` onwards."""

    from_year: int = Field(ge=1900, le=2200)
    years: int = Field(ge=1, le=50)
    law: str  # the law that set it, named in the evidence and the DPO's documentation


class StatutoryHold(StrictModel):
    """A legal obligation to keep records (Art. 17(3)(b) GDPR), e.g. accounting law.

    A record is kept until 31 December of its document's year + the years that apply to that
    year: `years`, or the period of the latest `later_periods` entry whose `from_year` the
    document's year has reached (a law that lengthens the period for new documents only)."""

    label: str
    basis: str
    law: str
    years: int = Field(ge=1, le=50)
    later_periods: list[HoldPeriod] = Field(default_factory=list)
    # The regimes under whose law keeping these records is a legal obligation of ours: the GDPR's
    # Art. 6(1)(c) and 17(3)(b) take an obligation under Union or Member State law (Art. 6(3)),
    # the UK GDPR's one under domestic law only, so a Belgian statute is one under `gdpr` and none
    # under `uk_gdpr`. Where it is none, the records are still kept, but the letters give the basis
    # the privacy policy gives for a foreign law: our legitimate interests in complying with it
    # (Art. 6(1)(f)), to which the subject may object (Art. 21(1)). The other regimes' laws cite
    # no article for a hold: their letters say "compliance with a legal obligation" as before.
    # Unset: both (a policy version stored before this field).
    obligation_under: list[ArticleRegime] = Field(default_factory=lambda: list(_ARTICLE_REGIMES))
    # The law's name where it is no obligation of ours, as a sentence takes it after a verb:
    # "Belgian law" ("... in complying with Belgian law"; French "le droit belge").
    foreign_law: str | None = None

    @model_validator(mode="after")
    def _foreign_law_named(self) -> Self:
        if len(set(self.obligation_under)) != len(self.obligation_under):
            raise ValueError("obligation_under: a regime is listed twice")
        foreign = len(self.obligation_under) < len(_ARTICLE_REGIMES)
        if foreign and not self.foreign_law:
            raise ValueError("foreign_law: needed, since obligation_under leaves out a regime whose "
                             "letters then name the law (e.g. 'Belgian law')")
        if not foreign and self.foreign_law:
            raise ValueError("foreign_law: only for a law that obligation_under leaves out a regime of")
        return self

    def obliges_under(self, regime: str) -> bool:
        """Whether keeping these records is a legal obligation under `regime`'s law (Art. 17(3)(b)
        GDPR or UK GDPR); True under the regimes that cite no article for it."""
        return regime not in _ARTICLE_REGIMES or regime in self.obligation_under

    @field_validator("later_periods")
    @classmethod
    def _ascending(cls, value: list[HoldPeriod]) -> list[HoldPeriod]:
        starts = [p.from_year for p in value]
        if starts != sorted(set(starts)):
            raise ValueError("from_year must strictly increase")
        return value

    def years_for(self, document_year: int) -> int:
        years = self.years
        for period in self.later_periods:
            if document_year >= period.from_year:
                years = period.years
        return years


class DatasetHold(StrictModel):
    """How a statutory hold applies to a dataset: by each record's document date, or for as long
    as records of a child dataset that refer to it are held.

    `date_column` names one column or several: with several, the record's date is the latest
    of them that is set (a direct-debit mandate counts from its last collection, or from its
    signature while nothing was collected under it)."""

    statute: str
    date_column: list[Annotated[str, Field(pattern=IDENT)]] | None = Field(None, min_length=1)
    through: str | None = None  # a child dataset's name

    @field_validator("date_column", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.date_column is None) == (self.through is None):
            raise ValueError("needs exactly one of date_column or through")
        return self


class ActivitySource(StrictModel):
    """One source of a row's "last activity": a column of the row itself, or (with `dataset`) the
    latest value of a column over a child dataset's rows that point at it."""

    column: str = Field(pattern=IDENT)
    dataset: str | None = Field(None, pattern=IDENT)  # a child dataset (its `via` is the rule's dataset)


class RetentionRule(StrictModel):
    """A retention period from the privacy policy, applied daily by the retention sweep.

    A row expires when its last activity (the latest of `last_activity`'s sources; a row with none
    never expires) is more than `months` before the sweep, and, with `only_where_set`, one of
    those columns is set. `erase_subject` opens an erasure request
    for the row's subject (every system, hold-aware); `delete_rows` erases the expired rows in bulk
    by the dataset's erasure rules, with their child rows, or with `categories` clears only the
    fields of those categories."""

    name: str = Field(pattern=IDENT)
    label: str
    system: str
    dataset: str
    last_activity: list[ActivitySource] = Field(min_length=1)
    months: int = Field(ge=1, le=240)
    # Rows where none of these columns is set are out of the rule's reach (e.g. a contact with no
    # marketing consent and no newsletter has no marketing data to erase).
    only_where_set: list[Annotated[str, Field(pattern=IDENT)]] | None = Field(None, min_length=1)
    action: Literal["erase_subject", "delete_rows"]
    # erase_subject: whether the subject gets the request's letters (acknowledgement, response).
    notify_subject: bool = False
    # erase_subject: the systems the erasure reaches (default: every system), for data held
    # elsewhere than where its last activity is recorded (marketing data at the e-mail processor).
    systems: list[str] | None = Field(None, min_length=1)
    # delete_rows: clear only these categories' fields instead of erasing whole rows.
    categories: list[str] | None = Field(None, min_length=1)
    # Work per sweep, oldest first: subjects (erase_subject) or rows (delete_rows); the rest waits
    # for the next day, so a first run over a large backlog does not flood the workers.
    max_per_run: int = Field(500, ge=1, le=100_000)

    @field_validator("last_activity", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _action_options(self) -> Self:
        if self.action == "delete_rows" and self.notify_subject:
            raise ValueError("notify_subject applies to erase_subject rules only")
        if self.action == "erase_subject" and self.categories is not None:
            raise ValueError("categories apply to delete_rows rules only")
        if self.action == "delete_rows" and self.systems is not None:
            raise ValueError("systems apply to erase_subject rules only")
        return self
