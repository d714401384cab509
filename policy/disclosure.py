"""What the policy tells the subject about their own data beyond where it lives: where each piece
of data comes from (its origin, WP242 rev.01), which decides what a portability package holds,
the data categories with the legal basis of each one's processing, the recipients (Art. 15(1)(c),
and whom Art. 19 tells), and the Art. 15(1)(h) statement on automated decisions and profiling.

These texts name no article: the access package cites the articles in the law of the request's
regime (activities/citations.py): a basis's `article`, and Art. 22 for the automated decisions. So
a subject whose request falls under another law than the GDPR reads no GDPR article there."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, model_validator

from policy.strict import IDENT, StrictModel

# WP242 rev.01 (Art. 29 WP guidelines on the right to data portability), section III.1:
# - provided: typed in or uploaded by the subject (account details, messages, choices they made);
# - observed: recorded from their use of the service (activity logs, page views, device data);
# - derived / inferred: created by the controller from the other two (scores, segments, totals).
Origin = Literal["provided", "observed", "derived", "inferred"]
ORIGINS: tuple[str, ...] = get_args(Origin)
# Art. 20(1) covers data "provided by" the subject, which WP242 reads as provided and observed.
PORTABLE_ORIGINS = frozenset({"provided", "observed"})


# The lawful bases of Art. 6(1) GDPR (the UK GDPR numbers them the same).
LawfulBasis = Literal["6(1)(a)", "6(1)(b)", "6(1)(c)", "6(1)(d)", "6(1)(e)", "6(1)(f)"]


class LegalBasis(StrictModel):
    """A legal basis of a category's processing: the point of Art. 6(1) it rests on, and what it is
    in the policy's words without the article ("performance of contract (Terms and Conditions)").
    Without `article` (a basis of another law, or a policy version stored before bases named
    their article, whose text is the whole basis) the words are shown as written."""

    article: LawfulBasis | None = None
    basis: str

    @model_validator(mode="before")
    @classmethod
    def _as_written(cls, value: Any) -> Any:
        # Policy versions stored before bases named their article wrote each as one string; the
        # requests that started under them still load them.
        return {"basis": value} if isinstance(value, str) else value


class Profiling(StrictModel):
    """Where the profile the controller keeps about a subject lives, and what it means."""

    system: str = Field(pattern=IDENT)
    dataset: str = Field(pattern=IDENT)
    # The profile's results (a segment, a score): each must be a `derived` or `inferred` column.
    columns: list[str] = Field(min_length=1)
    # True in this column when the subject objected to profiling (Art. 21): no profile is kept.
    objection_column: str | None = None
    logic: str  # "meaningful information about the logic involved"
    significance: str  # "the significance and the envisaged consequences"


class AutomatedDecisions(StrictModel):
    """The Art. 15(1)(h) statement: decisions based solely on automated processing (Art. 22(1)
    and (4)), and profiling, told to each subject as it applies to them."""

    decisions: str
    profiling: Profiling | None = None


class Category(StrictModel):
    """A data category from the privacy policy, with the Art. 15 information about it."""

    label: str
    purposes: list[str]
    legal_bases: list[LegalBasis]
    retention: str
    source: str = "the data subject"


class Recipient(StrictModel):
    """A recipient (processor) named in the privacy policy: told of erasure, rectification and
    restriction under Art. 19 through the system that names it (`systems.*.recipient`)."""

    name: str  # the kind of recipient, as the privacy policy words it
    # Who it is (company name and country), where the controller knows: an access package names
    # recipients (CJEU C-154/21) and falls back to `name` only where this is unset.
    identity: str | None = None
    role: str
    categories: list[str] = Field(default_factory=list)
    location: str = "EEA"
    safeguards: str | None = None
    # A provider that holds the data only as the host of our systems (servers, storage): what they
    # erase, correct or restrict is done on its machines, so no system needs to name it.
    hosts_our_systems: bool = False
