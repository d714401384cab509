"""What staff send for an action on a running request (api/staff_actions.py): each body is made
from its workflow update's input (`rest_body`), so a limit is declared once, on the input, and
carries what the API checks before the workflow is asked: text in reading order (`StaffBody`), the
failed step a retry or a skip answers (`StepAnswer`), the attempt of the task a retry or a
resolution answers (`TaskAnswer`), the round of codes a resend replaces (`RoundShown`,
`resent_since`). A console form becomes the same body (api/staff_actions.py `body_from_form`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from starlette.datastructures import FormData

from api.problems import Problem
from schemas.plain_text import refuse_blank, refuse_reordering
from schemas.progress_note import TellProgressInput
from schemas.restrictions import LiftRestrictionInput
from schemas.staff_answers import ResolveTaskInput, RetryTaskInput
from schemas.steps import RetryStepInput, SkipStepInput
from schemas.workflow import (
    ApproveInput,
    CancelInput,
    DenyInput,
    ExtendInput,
    ObjectionDecision,
    RequestState,
    ResendInput,
)


def rest_body(input: type[BaseModel], name: str, base: type[BaseModel] | None = None) -> type[BaseModel]:
    """The body a caller sends for a workflow update: the input's fields with their constraints,
    examples and descriptions, without `actor`, which the server fills in from the signed-in
    member of staff, and `once`, the press's one-time key, which it fills in from the console's
    form or the `Idempotency-Key` header (`StaffAction.keyed`). Made from the input so that a limit
    is declared once, on the input. `base` marks what the API checks first (`StepAnswer`)."""
    fields: dict[str, Any] = {field: (info.annotation, info) for field, info in input.model_fields.items()
                              if field not in ("actor", "once")}
    body: type[BaseModel] = create_model(name, __base__=base or StaffBody, **fields)
    return body


class StaffBody(BaseModel):
    # Stripped before its bounds are checked, as the console's forms strip what they send
    # (StaffAction.body_from_form): "ok" and ten spaces is two characters, not twelve.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # What staff write may reach the subject's letter (a reason, an explanation, a progress note):
    # marks that reorder text (U+202E and the like) could make it read otherwise than it was
    # approved, and a text that shows nothing (zero-width spaces) is quoted as an empty paragraph.
    # Refused here, where staff send it, not on the workflow's input, which histories already hold.
    @field_validator("*")
    @classmethod
    def _in_reading_order(cls, value: object) -> object:
        return refuse_blank(refuse_reordering(value)) if isinstance(value, str) else value

    def unshown(self) -> str | None:
        """Why a console form's body is refused unread: it does not say what its page showed (a
        page from before forms said it, a hand-made post); None once it does."""
        return None


# The field naming the failed step a retry or a skip answers (schemas/steps.py `TroubleKey`).
STEP_KEY = "trouble"


class StepAnswer(StaffBody):
    """A retry or a skip of a failed step. The workflow's update answers whichever step is failing
    when it arrives: a skip pressed on a page loaded while the acknowledgement's letter failed (or
    pressed twice, or a colleague's) recorded the response's letter, which failed since, as sent by
    hand, and the subject never had their answer. So the caller names the step it read (the
    request's `trouble.key`, the input's `trouble`), and another step failing by then is refused:
    by the API first, with the step failing now in words (api/service.py `require_step_shown`),
    and by the update's validator, which nothing can come between (workflows/step_trouble.py).
    The console's forms always send it."""


class RoundShown(StaffBody):
    """A resend of the verification's code, which stops the last one working: a second press (a
    colleague's, a client's retry) killed the code the subject had just received. So the caller
    names the round of codes it read, and a code sent since is refused (`resent_since`); without
    it, a REST call sends one (scripts written before it), a console form nothing (its page always
    says). Two at once are one round (workflows/verification.py)."""

    round: int | None = Field(None, ge=1, le=10_000, examples=[1], description=(
        "the `verification.round` the caller read: refused (409) once a code was sent since"))

    def unshown(self) -> str | None:
        return None if self.round is not None else (
            "this form does not say which code it replaces: nothing was sent; reload the page and send one from it")


# Codes sent for one request, staff's resends included. The workflow caps the subject's own asks
# (`verification_max_codes`) but not staff's: an agent's script (or a stolen token) resending in a
# loop mailed the subject a code a second, from the controller's own address.
CODES_MAX = 10


def codes_left(sent: int) -> bool:
    """Whether staff may send another code to a request that had `sent` (its `verification.round`)."""
    return sent < CODES_MAX


def resent_since(shown: int | None, live: RequestState | None) -> Problem | None:
    """Why a resend naming round `shown` (None: naming none) is refused given the live state: a
    code went out since, or CODES_MAX have. Sent when the workflow's state is not known (it
    decides then)."""
    now = live.verification.round if live is not None and live.verification is not None else None
    if now is not None and not codes_left(now):
        return Problem(409, "Refused", f"{now} codes have been sent for this request, as many as one request is "
                       "sent: no other was sent. The subject's last code still works until it expires; past it, "
                       "close the request and open another once you know they read the mail.", round=now)
    if shown is None or now is None or now == shown:
        return None
    return Problem(409, "Refused", f"a new code has been sent since the round this was sent for ({shown}; now "
                   f"{now}), so no other was sent: the code the subject received last still works. Read the "
                   "request again (reload the page) to send one more.", round=now)


# The fields naming the task a retry or a resolution answers, its attempt and its action
# (schemas/workflow.py `TaskAttempt`, `TaskActionShown`); on the console's form, one of each per
# system the form offers (`attempt.<system>`, `action.<system>`).
TASK_KEYS = ("attempt", "action")


class TaskAnswer(StaffBody):
    """A retry or a resolution of a system's task that needs attention. The workflow's update
    answers the task as it stands when it arrives: a resolution typed while a colleague retried
    the task recorded the next attempt, failed since for another reason, as done by other means,
    and a retry pressed twice (or replayed) started an attempt nobody decided on. So the caller
    names the attempt it read (`attempt`), and of which task (`action`: a restriction's lift runs
    tasks of its own, whose attempts count from 1 again), and the update's validator refuses any
    other, naming the attempt now and where it stands (workflows/task_fanout.py
    `require_attention`): a 409 in words, the workflow's own. The console's forms always send both."""

    @classmethod
    def shown_on(cls, form: FormData, values: dict[str, str]) -> dict[str, str]:
        """`values` with the attempt and action the form showed for the system chosen: a form
        offers every system that needs attention, each with its own."""
        system = values.get("system", "")
        shown = {key: str(value).strip() for key in TASK_KEYS if (value := form.get(f"{key}.{system}")) is not None}
        return {**{name: value for name, value in values.items() if name not in TASK_KEYS}, **shown}

    def unshown(self) -> str | None:
        said = self.model_dump()
        if all(said[key] is not None for key in TASK_KEYS):
            return None
        return (f"this form does not say which attempt of the {said['system']} task it answers: "
                "nothing was done; reload the page and answer the attempt it shows")


# Named as they appear in the OpenAPI document.
ExtendBody = rest_body(ExtendInput, "ExtendBody")
DenyBody = rest_body(DenyInput, "DenyBody")
CancelBody = rest_body(CancelInput, "CancelBody")
ApproveBody = rest_body(ApproveInput, "ApproveBody")
TaskBody = rest_body(RetryTaskInput, "TaskBody", TaskAnswer)
ResolveBody = rest_body(ResolveTaskInput, "ResolveBody", TaskAnswer)
SkipBody = rest_body(SkipStepInput, "SkipBody", StepAnswer)
RetryStepBody = rest_body(RetryStepInput, "RetryStepBody", StepAnswer)
LiftBody = rest_body(LiftRestrictionInput, "LiftBody")
DecisionBody = rest_body(ObjectionDecision, "DecisionBody")
ResendBody = rest_body(ResendInput, "ResendBody", RoundShown)
ProgressBody = rest_body(TellProgressInput, "ProgressBody")
