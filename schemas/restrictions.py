"""Contracts of a restriction's lifecycle (Art. 18 GDPR): recorded once in force, lifted only by an
explicit step announced to the subject first. No personal data: request ids, system names and
staff-written reasons only."""

from __future__ import annotations

from pydantic import Field

from schemas.contract import Contract
from schemas.plain_text import FreeText


class LiftRestrictionInput(Contract):
    """Compliance ends a restriction, with the reason the subject is told."""

    reason: FreeText = Field(min_length=10, max_length=4000,
                             examples=["The court case the subject needed the records for was settled on 3 March"])
    actor: str = "staff"


class RestrictionInForce(Contract):
    """The restriction request's fan-out finished: the systems it reached."""

    request_id: str
    systems: list[str]


class LiftAnnounced(Contract):
    request_id: str
    reason: str
    actor: str


class LiftSchedule(Contract):
    """When the lift takes effect: after the policy's notice period from the letter."""

    notice_days: int


class LiftCarriedOut(Contract):
    request_id: str
    systems: list[str]  # every system the lift was carried to
    recipients: list[str]  # the Art. 19 recipients among them, told of the lift
    actor: str


# The requests whose restriction is being lifted (migrations/0014): completed, yet their workflow
# still runs the lift's tasks, which may need staff; the queue and the metrics count them as open.
LIFTING_SQL = "SELECT request_id FROM restrictions WHERE lift_requested_at IS NOT NULL AND lifted_at IS NULL"
