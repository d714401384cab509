"""Suppression checks for importers: before (re-)importing contacts into a marketing system, ask
which addresses objected to direct marketing. Only keyed hashes are stored and compared. And the
way back: a subject who objected and later consents to marketing again is taken off the list by
compliance, on record. The list itself: dsrflow/stores/suppressions_store.py, which the console's
page (api/console/suppressions.py) asks too."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from api.auth import Staff, require_role
from api.deps import Pool, State
from api.problems import Problem
from api.staff_writes import SUPPRESSION_CHECK_MAX, SUPPRESSION_ROLES, SuppressionLiftBody
from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.suppressions_store import NotSuppressed, lift_suppression, suppressed

router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"])


class CheckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    emails: list[EmailStr] = Field(min_length=1, max_length=SUPPRESSION_CHECK_MAX)


@router.post("/check")
async def check(staff: Annotated[Staff, require_role(SUPPRESSION_ROLES["check"])], body: CheckBody, state: State,
                pool: Pool) -> dict:
    """Which of these addresses must not receive direct marketing (Art. 21(3) GDPR)."""
    found = await suppressed(pool, load_secret_key(state.settings), [str(e) for e in body.emails])
    return {"suppressed": sorted(found)}


@router.post("/lift", responses={404: {"description": "The address is not on the list"}})
async def lift(staff: Annotated[Staff, require_role(SUPPRESSION_ROLES["lift"])], body: SuppressionLiftBody,
               state: State, pool: Pool) -> dict:
    """Take an address off the direct-marketing list: the subject who objected (Art. 21(3) GDPR)
    has consented to marketing again (Art. 6(1)(a)). Audited as `suppression.lifted`, with the
    consent as staff describe it, in the trail of the objection that put it there. Without this,
    an address stayed refused for good, whatever the subject asked for later."""
    try:
        request_id = await lift_suppression(pool, load_secret_key(state.settings), str(body.email),
                                            consent=body.consent, actor=staff.actor)
    except NotSuppressed:
        raise Problem(404, "Not suppressed", "this address is not on the direct-marketing suppression list") from None
    return {"lifted": True, "objection_request": request_id}
