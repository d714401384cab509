"""The controller's choices about restrictions of processing (Art. 18 GDPR) where the law leaves
room: how long after the subject is told a lift takes effect, and under which grounds an active
restriction keeps the records from every erasure the controller starts itself (docs/legal.md,
"Restriction of processing (Art. 18)")."""

from __future__ import annotations

from pydantic import Field

from policy.strict import StrictModel
from schemas.requests import RestrictionGround


class RestrictionPolicy(StrictModel):
    # Days between the letter announcing a lift (Art. 18(3)) and the lift itself; 0: as soon as the
    # letter has been handed to the mail relay.
    lift_notice_days: int = Field(0, ge=0, le=90)
    # Grounds under which the restricted records outlive retention periods and deferred erasure
    # until the restriction is lifted: (c) the subject needs them for legal claims, and (b) the
    # subject opposed their erasure.
    keeps_from_erasure: tuple[RestrictionGround, ...] = (
        RestrictionGround.needed_for_legal_claims, RestrictionGround.unlawful_processing)
