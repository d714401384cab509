"""Appeals (VCDPA, CTDPA, CPA) and complaints to us (UK GDPR: Data Protection Act 2018 s. 164A): a
request that asks us to reconsider one we refused, in whole or in part. It refers to the refused
request, takes its regime (and its country, unless it states one), and runs on its own deadline
(dsrflow/domain/deadlines.py, `compute_deadline(..., appeal=True)`): an appeal's is statutory; a
complaint is acknowledged within 30 days and its outcome due by our target for "without undue
delay". Which of the two a regime has is `reconsiders`; the subject reads "appeal" or "complaint"."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import asyncpg

from dsrflow.domain.deadlines import reconsiders
from dsrflow.domain.references import short_reference, typed_reference
from schemas.requests import NewRequest
from schemas.vocabulary import Regime


def complaint_form(reference: str, language: str, base_url: str = "") -> str:
    """The portal's complaint form about the refused request `reference`, in `language` (a UK
    complaint to us, DPA 2018 s. 164A): where a refusal letter sends the subject (with the site's
    `base_url`), and where the page of a complaint closed for another that ended undecided links."""
    return f"{base_url}/portal/complaints?{urlencode({'about': reference, 'lang': language})}"


class AppealRefused(ValueError):
    """The appeal cannot be opened; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotAReference(AppealRefused):
    """`appeal_of` is neither a request id nor a short reference: said from the input alone, so
    anyone may be told (it tells nothing of any request)."""


# A refusal in whole or in part is a letter that carried the remedies (activities/letters.py
# records `refusal` on its audit event): a denial, a closed unverified request, a cancellation by
# staff, an erasure that kept records, an objection overridden, an access with data withheld. Or
# such a letter whose step failed and that staff sent by other means (`letter.skip_settled`, the
# letter not gone from us).
_REFUSED = """SELECT EXISTS (SELECT 1 FROM audit_events WHERE request_id = $1 AND (data->>'refusal')::boolean
                 AND (event_type = 'letter.sent'
                      OR (event_type = 'letter.skip_settled' AND NOT (data->>'went')::boolean)))"""


# An appeal (complaint) of the same request that is being decided or has been: its outcome is final,
# as an appeal of the appeal is refused (`check_appeal`). One awaiting its subject's confirmation
# does not count (a stranger's, made in the subject's name, would hold the subject's own back); nor
# one closed unconfirmed, withdrawn or cancelled, nor one denied because we could not tell that it
# came from the subject: their letters invite the subject to appeal (complain) again.
# A refusal's appeals are decided one at a time, and only once: `refuse_decided` at intake, and
# activities/appeal_claims.py as an appeal starts being decided (`besides`: itself).
_DECIDING = ("in_progress", "awaiting_approval")
_DECIDED = """SELECT a.id, a.status FROM dsr_requests a
               WHERE lower(a.subject_email) = lower($2) AND a.details->>'appeal_of' = $1
                 AND a.id IS DISTINCT FROM $3::uuid
                 AND (a.status IN ('in_progress', 'awaiting_approval', 'completed')
                      OR (a.status = 'denied' AND NOT EXISTS (
                          SELECT FROM audit_events e WHERE e.request_id = a.id AND e.event_type = 'status.denied'
                             AND e.data->>'reason_code' = 'identity_not_established')))
               ORDER BY a.received_at LIMIT 1"""


# The details that say what a request asks for: an appeal (and the portal's complaint form, which
# repeats them: api/public/portal.py) asks for the same as the request it is about, and takes
# them from it when it gives none (`check_appeal`).
ASKED = {"corrections": "corrections", "restriction_grounds": "restriction grounds",
         "objection_scope": "objection scope"}
# The follow-up as the refusals read it (dsrflow/domain/deadlines.py `reconsiders`).
_A = {"appeal": "an appeal", "complaint": "a complaint"}


async def check_appeal(conn: asyncpg.Connection | asyncpg.Pool, new: NewRequest) -> NewRequest:
    """The request as it is to be opened: an appeal takes the regime of the request it refers to,
    its country unless the appeal states one, and what it asked (`ASKED`) where the appeal leaves
    that out.
    Raises AppealRefused when the referred request does not exist, is another subject's, was not
    refused, is itself an appeal, or falls under a law that grants no appeal, when the appeal asks
    for other than it did (`ASKED`), and when an appeal (not a complaint) carries `complaint_reasons`.
    Whether the request already has an appeal decided, or being decided, is `refuse_decided`'s
    (api/service.py `checked_appeal`), which a repeat of a stored appeal does not ask."""
    if new.appeal_of is None:
        return new
    original = await appealed_request(conn, new.appeal_of, str(new.subject.email))
    kind = reconsiders(original["regime"])
    if (original["details"] or {}).get("appeal_of"):
        # A complaint's outcome, like an appeal's decision, ends what we hear: the Information
        # Commissioner (or the Attorney General) is next, and its letter names them.
        raise AppealRefused("appeal_of", f"this request is itself {_A[kind or 'appeal']}: our answer to it is final; "
                            "the letter that gave it names the authority to complain to")
    if kind is None:
        raise AppealRefused("appeal_of", f"the {original['regime']} regime of that request grants no "
                            "appeal to us; the letter that refused it names the authority to complain to")
    if new.complaint_reasons and kind != "complaint":
        # The statutory appeals (VCDPA, CTDPA, CPA) are answered on what the refusal decided; only
        # the UK's complaint form asks what the complaint is about (schemas/requests.py).
        raise AppealRefused("complaint_reasons", f"only a complaint to us under UK data protection law takes "
                            f"reasons; an appeal under the {original['regime']} regime of that request takes none")
    if "regime" in new.model_fields_set and new.regime.value != original["regime"]:
        raise AppealRefused("regime", f"{_A[kind]} is under the regime of the request it is about "
                            f"({original['regime']})")
    if new.type.value != original["request_type"]:
        raise AppealRefused("type", f"{_A[kind]} is of the same type as the request it is about "
                            f"({original['request_type']})")
    if taken := {field: value for field in ASKED
                 if not getattr(new, field) and (value := (original["details"] or {}).get(field))}:
        # Left out (or empty), what the refused request asked is taken from it: staff opening an
        # appeal from a reply or a letter, and the subject, had to retype its corrections exactly.
        # Validated as if given, so that its workflow, letters and evidence read it as before.
        new = type(new).model_validate({**new.model_dump(exclude_unset=True), **taken})
    if differs := _asked_otherwise(new.details(), original["details"] or {}):
        # Reconsidering a refusal is deciding again what was refused. Before, only the type was
        # compared: an appeal asking for other corrections, grounds or scope was a new request run
        # as the refused one's follow-up, its evidence and letters saying we reconsidered that.
        raise AppealRefused(differs, f"{_A[kind]} asks for what the request it is about asked: the same "
                            f"{ASKED[differs]}")
    if not await conn.fetchval(_REFUSED, original["id"]):
        raise AppealRefused("appeal_of", "that request was not refused, in whole or in part: "
                            "there is nothing to appeal")
    # The appeal records the id of the request it appeals, however the subject named it. It is
    # the same subject's follow-up: the country they gave then is still a fact about them (the
    # policy's default would make a Virginian Belgian); one the appeal states is newer.
    return new.model_copy(update={"regime": Regime(original["regime"]), "appeal_of": uuid.UUID(str(original["id"])),
                                  "country": new.country or original["country"]})


async def refuse_decided(conn: asyncpg.Connection | asyncpg.Pool, new: NewRequest) -> None:
    """Raises AppealRefused when the request `new` appeals (as `check_appeal` returned it) has an
    appeal (a complaint) being decided or decided (`_DECIDED`). Appealing the refused request anew
    had it decided again, each time on a new deadline, after the letter giving the outcome had said
    it was final. The caller asks it of a new appeal, not of a repeat of one stored (its key): that
    is the appeal being decided."""
    if new.appeal_of is None:
        return
    earlier = await decided_appeal(conn, str(new.appeal_of), str(new.subject.email))
    if earlier is not None:
        raise AppealRefused("appeal_of", f"that request's {decided_words(new.regime.value, earlier)}")


async def decided_appeal(conn: asyncpg.Connection | asyncpg.Pool, appeal_of: str, email: str,
                         besides: str | None = None) -> asyncpg.Record | None:
    """The appeal (complaint) of request `appeal_of` by the subject at `email` that is being decided
    or has been (`_DECIDED`: its `id` and `status`), other than `besides`; None when there is none."""
    return await conn.fetchrow(_DECIDED, appeal_of, email, besides)


def being_decided(status: str) -> bool:
    """Whether an appeal `decided_appeal` found is still being decided (else it has been)."""
    return status in _DECIDING


def decided_words(regime: str, appeal: Mapping[str, Any]) -> str:
    """Staff's words for `appeal` (as `decided_appeal` found it), after "that request's": the
    refusal at intake and the closing of a second appeal (activities/appeal_claims.py) say it alike."""
    said = ("is being decided: its decision goes to the subject and will be final" if being_decided(appeal["status"])
            else "has been decided: our answer to it is final; the letter that gave it names the authority to "
                 "complain to")
    return f"{reconsiders(regime) or 'appeal'} {short_reference(appeal['id'])} {said}"


def _asked_otherwise(appeal: Mapping[str, Any], original: Mapping[str, Any]) -> str | None:
    """The first detail saying what is asked (`ASKED`) in which the appeal differs from the request
    it is about; the grounds of a restriction in any order."""
    for field in ASKED:
        mine, theirs = appeal.get(field), original.get(field)
        if isinstance(mine, list) and isinstance(theirs, list):
            mine, theirs = sorted(mine), sorted(theirs)
        if mine != theirs:
            return field
    return None


_COLUMNS = "SELECT id, regime, request_type, subject_email, country, details FROM dsr_requests"


async def appealed_request(conn: asyncpg.Connection | asyncpg.Pool, named: uuid.UUID | str,
                           email: str) -> asyncpg.Record:
    """The request of the subject at `email` that `named` names: by its id, or by the short reference
    its letters give (dsrflow/domain/references.py). Someone else's request is answered like a
    missing one: an appeal must not reveal that it exists. (The portal's complaint form reads the
    type and details the complaint repeats from it: api/public/portal.py `complain`.)"""
    email = email.lower()
    if isinstance(named, uuid.UUID):
        rows = [row] if (row := await conn.fetchrow(f"{_COLUMNS} WHERE id = $1", named)) else []
    elif (reference := typed_reference(str(named))) is not None:
        # dsr_reference is unique (migrations/0026_team.sql); more than one would be a collision.
        rows = list(await conn.fetch(f"{_COLUMNS} WHERE dsr_reference(id) = $1 LIMIT 2", reference))
        named = reference
    else:
        raise NotAReference("appeal_of", "must be the id of the request appealed (a UUID) or the short "
                            "reference its letters give (ten letters and digits, such as 9WPSS9NUBP)")
    mine = [row for row in rows if row["subject_email"].lower() == email]
    if not mine:
        raise AppealRefused("appeal_of", f"no request {named} of this data subject")
    if len(mine) > 1:
        raise AppealRefused("appeal_of", f"the reference {named} names more than one of your requests: "
                            "give the request's full id")
    return mine[0]
