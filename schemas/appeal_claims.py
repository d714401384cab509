"""Contracts of an appeal's (a UK complaint's) claim to be decided (workflows/appeal_claim.py,
activities/appeal_claims.py): a refusal's appeals are decided once, by the first to start."""

from __future__ import annotations

from schemas.contract import Contract
from schemas.workflow import Transition


class AppealClaim(Contract):
    request_id: str
    # The status change the appeal's start records with its claim (its identity confirmed: in
    # progress), in the same transaction; None for one in progress since intake (attested by staff).
    in_progress: Transition | None = None


class AppealTaken(Contract):
    """Another appeal of the same refusal is being decided, or has been: this one is closed
    (cancelled, recorded with the claim) and not decided."""

    decided_as: str  # the other appeal's id
    decided: bool  # it has been decided (answered, or denied), not only being decided
    reason: str  # staff's words, recorded on `status.cancelled` (`dsrflow.domain.appeals.decided_words`)
