"""The request contract: what an agent, the API or a subject submits to open a request."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from schemas.countries import country_code
from schemas.plain_text import OneLine, refused_control
from schemas.vocabulary import Language, Regime

__all__ = [
    "Channel", "DenialReason", "NewRequest", "ObjectionScope", "PublicNewRequest", "Regime",
    "RequestStatus", "RequestType", "RestrictionGround", "SubjectIdentity", "denial_reasons",
    "without_complaint_reasons",
]


class RequestType(StrEnum):
    access = "access"
    portability = "portability"
    erasure = "erasure"
    rectification = "rectification"
    restriction = "restriction"
    objection = "objection"


class Channel(StrEnum):
    web = "web"
    email = "email"
    phone = "phone"
    post = "post"
    api = "api"


class RequestStatus(StrEnum):
    awaiting_verification = "awaiting_verification"
    in_progress = "in_progress"
    awaiting_approval = "awaiting_approval"
    completed = "completed"
    denied = "denied"
    cancelled = "cancelled"
    closed_unverified = "closed_unverified"

    @property
    def is_closed(self) -> bool:
        return self in _CLOSED


_CLOSED = {
    RequestStatus.completed, RequestStatus.denied, RequestStatus.cancelled,
    RequestStatus.closed_unverified,
}


class RestrictionGround(StrEnum):
    """The four grounds of Art. 18(1) GDPR, (a) to (d)."""

    accuracy_contested = "accuracy_contested"
    unlawful_processing = "unlawful_processing"
    needed_for_legal_claims = "needed_for_legal_claims"
    objection_pending = "objection_pending"


class ObjectionScope(StrEnum):
    direct_marketing = "direct_marketing"
    profiling = "profiling"
    legitimate_interest = "legitimate_interest"


class DenialReason(StrEnum):
    manifestly_unfounded = "manifestly_unfounded"
    excessive = "excessive"
    identity_not_established = "identity_not_established"
    other = "other"


# The GDPR and the UK GDPR (Art. 12(5)), the CCPA (Civ. Code § 1798.145(h)(3)) and the US state
# laws let a controller refuse a request that is manifestly unfounded or excessive; PIPEDA and the
# LGPD name no such ground. There a refusal rests on one of their own exceptions (PIPEDA s. 9, for
# instance), given as `other` with its explanation: a letter citing a ground the law does not have
# refuses on nothing.
_UNFOUNDED_OR_EXCESSIVE = (DenialReason.manifestly_unfounded, DenialReason.excessive)
_WITHOUT_THAT_GROUND = frozenset({Regime.pipeda, Regime.lgpd})


def denial_reasons(regime: str) -> list[DenialReason]:
    """The grounds a request under `regime` may be denied on."""
    if regime in _WITHOUT_THAT_GROUND:
        return [reason for reason in DenialReason if reason not in _UNFOUNDED_OR_EXCESSIVE]
    return list(DenialReason)


# LGPD Art. 19, I: the simplified confirmation of whether we process the subject's data, at once.
CONFIRMATION_ONLY = ("only applies to an access request under the LGPD (regime lgpd), not an appeal: the "
                     "simplified confirmation of LGPD Art. 19, I")

MAX_CORRECTIONS = 20
# What a subject writes about their complaint (UK GDPR: Data Protection Act 2018 s. 164A): a few
# paragraphs; the privacy mailbox takes anything longer.
MAX_COMPLAINT_REASONS = 2000
MAX_CORRECTION_LENGTH = 1000  # the policy's per-column max_length is at most this
# Received dates a little ahead of our clock are clock skew between machines, not the future.
_CLOCK_SKEW = timedelta(minutes=5)
# No receipt is earlier than the oldest law dsrflow applies (PIPEDA, in force from 1 January 2001).
# Without this floor a receipt in year 1 failed to store (a 500) or, stored, failed the request's
# first step for good: the deadline's date in the controller's timezone is before year 1.
EARLIEST_RECEIPT = datetime(2001, 1, 1, tzinfo=UTC)


# Bounds on what a stranger can make us store and carry through a workflow: a field name is short,
# a corrected value is a name, an address or a number, and no record has hundreds of fields.
FieldName = Annotated[OneLine, StringConstraints(max_length=63)]  # PostgreSQL's longest column name
CorrectedValue = Annotated[OneLine, StringConstraints(max_length=MAX_CORRECTION_LENGTH)]


def _free_text(value: str) -> str:
    if reason := refused_control(value):
        raise ValueError(reason)
    return value


# A complaint's reasons: lines of text (schemas/plain_text.py's FreeText), bounded first, so that a
# text too long is refused in characters.
ComplaintText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_COMPLAINT_REASONS),
                          AfterValidator(_free_text)]


class SubjectIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailStr
    # Both reach letters (and the name a salutation): one line, no control characters.
    name: OneLine | None = Field(None, min_length=1, max_length=200)
    customer_id: OneLine | None = Field(None, min_length=1, max_length=100)


class RequestDetails(BaseModel):
    """Type-specific details, shared by the staff and the public forms."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type: RequestType
    country: str | None = Field(
        None, description="the subject's country, an assigned ISO 3166-1 alpha-2 code (UK is taken as GB, "
        "EL as GR; XK, Kosovo, is accepted); if omitted, the appealed request's for an appeal, else the "
        "policy's default under the GDPR and the country of the law under any other regime (US for "
        "the VCDPA, BR for the LGPD); kept as a fact about the subject, never the holiday calendar of the "
        "deadline; under a US state law (CCPA, VCDPA, CTDPA, CPA) US or none, as each protects its own "
        "state's residents only")
    corrections: dict[FieldName, CorrectedValue] | None = Field(
        None, description="rectification: field name -> corrected value; only fields the controller's policy "
        "declares rectifiable, each value in that field's format and length (a 422 names the field and lists "
        "what can be corrected); at most 20; an appeal may leave it out (`appeal_of`)"
    )
    restriction_grounds: list[RestrictionGround] | None = Field(
        None, max_length=len(RestrictionGround), description="restriction: the Art. 18(1) grounds invoked"
    )
    objection_scope: ObjectionScope | None = Field(None, description="objection: what is objected to")
    language: Language | None = Field(
        None, description="the language the subject is written to in (one the controller's policy supports, "
        "`languages.supported`); the policy's default if omitted")
    appeal_of: uuid.UUID | Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = Field(
        None, description="an appeal (VCDPA, CTDPA, CPA): the subject's request we refused, in whole or in "
        "part, by its id or by the short reference its letters give (such as 9WPSS9NUBP); the appeal takes "
        "its regime (and its country unless `country` is given) and has its own statutory deadline; a complaint "
        "to us (UK GDPR, Data Protection Act 2018 s. 164A) likewise names the request it is about. It asks for what "
        "that request asked: `corrections`, `restriction_grounds` and `objection_scope` left out are taken from "
        "it; given, they must be the same")
    complaint_reasons: ComplaintText | None = Field(
        None, description="a complaint to us (UK GDPR, Data "
        "Protection Act 2018 s. 164A; `appeal_of` names the refused request): what the complaint is about, in the "
        "subject's words; line breaks allowed, no other control characters; at most 2,000 characters. Refused on "
        "any other request, an appeal under a US state law included. Shown to compliance, kept in the evidence "
        "pack, never repeated in a letter")
    simplified_confirmation: bool | None = Field(
        None, description="an access request under the LGPD (`regime` `lgpd`): the subject also asks for the "
        "simplified confirmation at once (LGPD Art. 19, I), a letter sent as soon as their identity is verified "
        "saying whether we process personal data about them as far as our own systems tell at once; the complete "
        "statement (Art. 19, II) still follows by the due date. Refused (422 naming this field) on any other "
        "request type, under any other regime, and on an appeal")

    @field_validator("complaint_reasons", mode="before")
    @classmethod
    def _complaint_reasons(cls, value: Any) -> Any:
        # A browser's text area sends CRLF: a line break counts as one character, not two.
        return value.replace("\r\n", "\n") if isinstance(value, str) else value

    @field_validator("simplified_confirmation")
    @classmethod
    def _simplified_confirmation(cls, value: bool | None) -> bool | None:
        return value or None  # false asks for nothing: stored as not asked

    @field_validator("appeal_of", mode="before")
    @classmethod
    def _appeal_of(cls, value: Any) -> Any:
        # An id is kept as one; anything else is a reference, resolved (or refused, naming this
        # field) against the subject's requests when the appeal is opened (dsrflow/domain/appeals.py).
        if isinstance(value, str):
            try:
                return uuid.UUID(value.strip())
            except ValueError:
                return value
        return value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return None if value is None else country_code(value)

    @field_validator("corrections")
    @classmethod
    def _corrections(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        # Bounded before the policy looks at each one (policy/rectification.py): a person has a
        # handful of fields to correct, not hundreds.
        if value is not None and len(value) > MAX_CORRECTIONS:
            raise ValueError(f"at most {MAX_CORRECTIONS} corrections in one request")
        if value is not None and any(not k.strip() for k in value):
            raise ValueError("field names must not be empty")
        return value

    @model_validator(mode="after")
    def _details_match_type(self) -> Self:
        need = {
            RequestType.rectification: ("corrections", "rectification needs at least one correction"),
            RequestType.restriction: ("restriction_grounds", "restriction needs at least one Art. 18(1) ground"),
            RequestType.objection: ("objection_scope", "objection needs a scope"),
        }
        for request_type, (field, message) in need.items():
            value = getattr(self, field)
            # An appeal left without them asks for what the request it names asked: they are taken
            # from it when it is opened (dsrflow/domain/appeals.py `check_appeal`).
            if self.type == request_type and not value and self.appeal_of is None:
                raise _field_error(field, message)
            if self.type != request_type and value:
                raise _field_error(field, f"only applies to {request_type.value} requests")
        if self.simplified_confirmation and (self.type != RequestType.access or self.appeal_of is not None):
            raise _field_error("simplified_confirmation", CONFIRMATION_ONLY)
        if self.complaint_reasons and self.appeal_of is None:
            raise _field_error("complaint_reasons", "only applies to a complaint about a request we refused under "
                               "UK data protection law (name it in appeal_of)")
        return self

    def details(self) -> dict[str, Any]:
        return self.model_dump(
            mode="json", include={"corrections", "restriction_grounds", "objection_scope", "appeal_of", "complaint_reasons",
                                   "simplified_confirmation"},
            exclude_none=True,
        )


class NewRequest(RequestDetails):
    """A request opened by staff or through the API."""

    regime: Regime = Regime.gdpr
    subject: SubjectIdentity
    received_at: datetime | None = Field(None, description="when the request reached us; default now")
    channel: Channel = Channel.api
    identity_attested: bool = Field(
        False, description="an agent attests the subject is already authenticated; skips verification"
    )
    client_request_id: OneLine | None = Field(
        None, min_length=1, max_length=200, description="the caller's id; repeats return the same request"
    )

    @model_validator(mode="after")
    def _confirmation_under_lgpd(self) -> Self:
        if self.simplified_confirmation and self.regime != Regime.lgpd:
            raise _field_error("simplified_confirmation", CONFIRMATION_ONLY)
        return self

    @field_validator("received_at")
    @classmethod
    def _received(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("must include a timezone, e.g. 2026-01-31T10:00:00+01:00")
        if value > datetime.now(UTC) + _CLOCK_SKEW:
            raise ValueError("must not be in the future")
        if value < EARLIEST_RECEIPT:
            raise ValueError(f"must not be before {EARLIEST_RECEIPT:%Y-%m-%d}: no law a request is under was in force")
        return value


class PublicNewRequest(RequestDetails):
    """A request a data subject submits through the portal."""

    email: EmailStr
    name: OneLine | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _no_lgpd_here(self) -> Self:
        # A subject's own request is under the GDPR (api/public/intake.py opens it so): the LGPD's
        # simplified confirmation is asked of staff, who open the request under the LGPD.
        if self.simplified_confirmation:
            raise _field_error("simplified_confirmation", CONFIRMATION_ONLY + "; a request made here is "
                               "under the GDPR: write to our privacy address to make one under the LGPD")
        return self


def without_complaint_reasons(details: dict[str, Any] | None) -> dict[str, Any] | None:
    """A request's stored details as every member of staff may read them: a complaint's reasons
    left out, for who decides the complaint alone (compliance: the console's page, the evidence
    pack, and `GET /v1/requests/{id}` through api/read_models/staff_reach.py `readable_view`)."""
    if not details or "complaint_reasons" not in details:
        return details
    return {key: value for key, value in details.items() if key != "complaint_reasons"}


def _field_error(field: str, message: str) -> Exception:
    # A model-level check that is about one field: report it on that field's location.
    from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

    return ValidationError.from_exception_data(
        "request",
        [InitErrorDetails(type=PydanticCustomError("value_error", message), loc=(field,), input=None)],
    )
