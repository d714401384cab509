"""What staff send to record a subject's dispute of the accuracy of their data against a correction
we refused in whole or in part (dsrflow/stores/accuracy_disputes.py): the subject's statement, as
they wrote it or as staff took it down. The refusal's letter offers it under the request's law
(activities/letter_refusals.py `accuracy_dispute`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from schemas.contract import Contract
from schemas.plain_text import StaffText

# A few paragraphs (the CCPA's regulations, as we read them, bound a statement on health information to 250 words);
# anything longer stays in the privacy mailbox, under the request's reference.
STATEMENT_MIN, STATEMENT_MAX = 10, 4000


class DisputeStatement(Contract):
    # Other staff read it (the timeline, the evidence pack) as the subject's own words: measured
    # without the spaces around it, in reading order (no right-to-left override making it read
    # otherwise than it was recorded), and saying something (not twelve spaces or zero-width ones).
    model_config = ConfigDict(str_strip_whitespace=True)

    statement: StaffText = Field(
        min_length=STATEMENT_MIN, max_length=STATEMENT_MAX,
        description="the subject's statement of why they contest the accuracy of the data we did not correct, "
                    "as they wrote it: kept in the request's audit trail, shown in its timeline and evidence pack",
        examples=["My date of birth is 12 March 1984, not 21 March 1984: the passport copy I sent shows it."])


# How and when the recipients were told: a line or a few (by e-mail to their DPO on 7 December,
# the ticket's number); the letter or e-mail itself stays in the privacy mailbox.
TOLD_NOTE_MIN, TOLD_NOTE_MAX = 10, 2000
RECIPIENTS_MAX = 50  # more than any policy names


class DisputeTold(Contract):
    """That the recipients of the contested data were told of a recorded dispute (the CCPA's
    regulations: noted to any person to whom we disclose, share or sell the information; PIPEDA:
    made known to third parties having access to it): which recipients (keys of the policy's
    `recipients` that received data of the request's systems), or that none received the
    contested data; and how and when (`note`)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    recipients: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=RECIPIENTS_MAX,
        description="the keys of the policy's `recipients` told of the dispute: only those that received data of "
                    "the request's systems (each its system's `recipient`); another key is refused (422 naming it)",
        examples=[["communication_crm", "financial_services"]])
    none_to_tell: bool = Field(
        default=False, description="true, with no `recipients`, where no recipient received the contested data")
    note: StaffText = Field(
        min_length=TOLD_NOTE_MIN, max_length=TOLD_NOTE_MAX,
        description="how and when they were told (or why none received the contested data): kept in the request's "
                    "audit trail, shown in its timeline and evidence pack",
        examples=["E-mailed their DPO contacts on 7 December 2026 with the subject's statement (ticket 4411)."])

    @model_validator(mode="after")
    def _recipients_or_none(self) -> DisputeTold:
        if self.none_to_tell == bool(self.recipients):
            raise ValueError("name the recipients told (`recipients`), or say that none received the contested data "
                             "(`none_to_tell`), not both")
        return self
