"""What staff send to answer a system's task that needs them (a retry, a resolution by other
means), and the words every refused stale answer ends with. Like the update inputs of
schemas/workflow.py, these are the API's bodies too (api/staff_actions.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.contract import Contract
from schemas.plain_text import FreeText
from schemas.workflow import TASK_COUNT_MAX

# A system of the request's plan, as staff name it.
TaskSystem = Annotated[FreeText, Field(min_length=1, max_length=64, examples=["billing"])]


# What a refused answer to a failure staff read says last, whether a task's, a failed step's
# (workflows/step_trouble.py `require`, api/service.py `require_step_shown`) or a deferred erasure's
# (dsrflow/stores/deferred_store.py `DeferredStale`).
STALE_ANSWER = "nothing was done; read the request again before answering it"

# The attempt of a system's task a retry or a resolution answers, as the caller read it (its
# `attempt` in the request's `results`). The update answers the system's task as it stands when it
# arrives: a resolution typed while a colleague retried the task recorded the next attempt, failed
# since for another reason, as done by other means, and a retry pressed twice started a third.
# Named, any other attempt is refused (workflows/task_fanout.py `require_attention`). Left out of
# inputs recorded before it (None: whichever attempt needs attention), so no history changes.
TaskAttempt = Field(None, ge=1, le=TASK_COUNT_MAX,
                    description="the `attempt` of the system's task this answers, as `GET /v1/requests/{id}` showed "
                                "it in `results` (send it): when the task has been retried or answered since, 409 "
                                "naming its attempt now and where it stands, and nothing is done (left out, the "
                                "attempt needing attention now is answered)", examples=[1])


# The action of the task answered, as the caller read it (`results[].action`): a restriction's lift
# runs tasks of its own whose attempts count from 1 again, so a restriction's form for attempt 1 answered
# the lift's attempt 1. Named, another action is refused as another attempt is; None in older inputs.
TaskActionShown = Field(None, description="the `action` of the system's task this answers, as `GET /v1/requests/{id}` "
                                          "showed it in `results` (send it, with `attempt`): a restriction's lift runs "
                                          "tasks of its own, which count their attempts from 1 again",
                        examples=["erase"])
TaskAction = Literal["access", "erase", "rectify", "restrict", "lift_restriction", "object"]


class RetryTaskInput(Contract):
    system: TaskSystem
    attempt: int | None = TaskAttempt
    action: TaskAction | None = TaskActionShown
    actor: str = "staff"



class ResolveTaskInput(Contract):
    """Staff confirm they carried out a system's action by other means (e.g. told a processor
    whose API has no such request type)."""

    system: TaskSystem
    note: FreeText = Field(min_length=5, max_length=2000, examples=["Told the provider by e-mail, ticket 88"])
    attempt: int | None = TaskAttempt
    action: TaskAction | None = TaskActionShown
    actor: str = "staff"
