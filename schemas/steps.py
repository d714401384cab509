"""Contracts of a request's failing steps: what the workflow shows staff about a step that failed
or kept failing, what it records, and staff's answer (retry it, or skip it having done its work by
other means)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from schemas.contract import Contract
from schemas.plain_text import FreeText

# The key prefix of a trouble of a step a staff decision owes (workflows/owed_steps.py).
OWED_TROUBLE = "owed-"
# ... and of one of the deadline watch's steps, its events and staff alerts (workflows/deadline_watch.py).
WATCH_TROUBLE = "watch-"


class StepTrouble(Contract):
    key: str  # "<step>:<n>", n counting the request's troubles; "owed-<step>:<n>" for a decision's owed step
    step: str  # the activity, e.g. "send_letter", "prepare_request"
    message: str
    transient: bool  # kept failing for a reason that may pass (and is retried on its own)
    skippable: bool  # staff may skip it, having done its work by other means
    since: datetime
    answered_by: str | None = None  # staff asked for a retry or a skip; it is under way
    # Which of the step's kind it was, e.g. "denial letter", "approval.granted record": a request
    # sends several letters and records several events (absent from troubles stored before).
    about: str | None = None


class TroubleRecord(Contract):
    """A trouble to store (open) or close (`resolution` set)."""

    request_id: str
    trouble: StepTrouble
    resolution: str | None = None
    actor: str = "workflow"


# The failed step a retry or a skip answers (its `StepTrouble.key`), as the caller read it: the
# update answers whichever step fails when it arrives, so a stale page (or a double press) answered
# a step failed since. Named, another step failing by then is refused (workflows/step_trouble.py).
TroubleKey = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,200}$",
                   description="the `trouble.key` of the failed step this answers, as `GET /v1/requests/{id}` "
                               "showed it: when another step's failure waits by then, 409 and nothing is done "
                               "(leave it out to answer whichever step is failing)", examples=["send_letter:1"])


class RetryStepInput(Contract):
    trouble: str | None = TroubleKey
    actor: str = "staff"


class SkipStepInput(Contract):
    """Staff did the failing step's work by other means (e.g. sent the letter themselves)."""

    note: FreeText = Field(min_length=5, max_length=2000,
                           examples=["Sent the acknowledgement by hand from the privacy mailbox, ticket 91"])
    trouble: str | None = TroubleKey
    actor: str = "staff"
