"""Appeals (VCDPA, CTDPA, CPA): a request that asks us to reconsider one we refused, in whole or
in part. It refers to the refused request, takes its regime, and runs on its own statutory
deadline (dsrflow/domain/deadlines.py, `compute_deadline(..., appeal=True)`)."""

from __future__ import annotations

import asyncpg

from dsrflow.domain.deadlines import grants_appeal
from schemas.requests import NewRequest
from schemas.vocabulary import Regime


class AppealRefused(ValueError):
    """The appeal cannot be opened; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# A refusal in whole or in part is a letter that carried the remedies (activities/letters.py
# records `refusal` on its audit event): a denial, a closed unverified request, a cancellation by
# staff, an erasure that kept records, an objection overridden, an access with data withheld.
_REFUSED = """SELECT EXISTS (SELECT 1 FROM audit_events WHERE request_id = $1
                 AND event_type = 'letter.sent' AND (data->>'refusal')::boolean)"""


async def check_appeal(conn: asyncpg.Connection | asyncpg.Pool, new: NewRequest) -> NewRequest:
    """The request as it is to be opened: an appeal takes the regime of the request it refers to.
    Raises AppealRefused when the referred request does not exist, is another subject's, was not
    refused, is itself an appeal, or falls under a law that grants no appeal."""
    if new.appeal_of is None:
        return new
    original = await conn.fetchrow(
        "SELECT id, regime, request_type, subject_email, details FROM dsr_requests WHERE id = $1",
        new.appeal_of)
    # Someone else's request is answered like a missing one: an appeal must not reveal it exists.
    if original is None or original["subject_email"].lower() != str(new.subject.email).lower():
        raise AppealRefused("appeal_of", f"no request {new.appeal_of} of this data subject")
    if (original["details"] or {}).get("appeal_of"):
        raise AppealRefused("appeal_of", "this request is itself an appeal: the decision on an appeal "
                            "is final; the letter that gave it names the authority to complain to")
    if not grants_appeal(original["regime"]):
        raise AppealRefused("appeal_of", f"the {original['regime']} regime of that request grants no "
                            "appeal to us; the letter that refused it names the authority to complain to")
    if "regime" in new.model_fields_set and new.regime.value != original["regime"]:
        raise AppealRefused("regime", f"an appeal is under the regime of the request it appeals "
                            f"({original['regime']})")
    if new.type.value != original["request_type"]:
        raise AppealRefused("type", f"an appeal is of the same type as the request it appeals "
                            f"({original['request_type']})")
    if not await conn.fetchval(_REFUSED, original["id"]):
        raise AppealRefused("appeal_of", "that request was not refused, in whole or in part: "
                            "there is nothing to appeal")
    return new.model_copy(update={"regime": Regime(original["regime"])})
