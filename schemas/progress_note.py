"""What staff send to tell a UK complainant of progress by hand (DPA 2018 s. 164A(5)(b);
workflows/complaint_progress.py `ProgressByHand`): a note the progress letter quotes as written.
Like the update inputs of schemas/workflow.py, it is the API's body too (api/staff_actions.py),
without `actor` and `once`, which the server fills in."""

from __future__ import annotations

from pydantic import Field

from schemas.contract import Contract
from schemas.plain_text import FreeText

# A paragraph or a few: the letter quotes it whole, beside where the complaint stands.
PROGRESS_NOTE_MIN, PROGRESS_NOTE_MAX = 10, 2000


class TellProgressInput(Contract):
    note: FreeText = Field(
        min_length=PROGRESS_NOTE_MIN, max_length=PROGRESS_NOTE_MAX,
        description="where the complaint stands, in staff's own words: quoted in the letter to the complainant "
                    "as written", examples=["We have asked the team that handled your request to review the "
                                            "records again; we expect their answer next week."])
    # The press's one-time key (the console form's, or the API's `Idempotency-Key` header, each
    # under a prefix of its own): the same key again sends no second letter.
    once: str | None = Field(None, max_length=300)
    actor: str = "staff"
