"""What staff send to record a subject's dispute of the accuracy of their data against a correction
we refused in whole or in part (dsrflow/stores/accuracy_disputes.py): the subject's statement, as
they wrote it or as staff took it down. The refusal's letter offers it under the request's law
(activities/letter_refusals.py `accuracy_dispute`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

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
