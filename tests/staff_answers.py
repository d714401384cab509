"""What the workflow tests answer a request with, and how they hold one of its steps: staff's
closing decisions, a step failing as a slow database or relay would, an answer given while a step
is held, and the replay of a request's history. Shared by the tests on the FastStack
(tests/workflow_stack.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.worker import Replayer

from schemas.requests import DenialReason, RequestType
from schemas.workflow import CancelInput, DenyInput, ExtendInput, RequestState
from tests.workflow_fakes import FakeActivities
from tests.workflow_stack import FastStack, Request
from workflows.dsr import DataSubjectRequestWorkflow as DSR
from workflows.owed_steps import ANSWER_WITHIN
from workflows.system_task import SystemTaskWorkflow

DENY = DenyInput(reason_code=DenialReason.excessive, explanation="The fourth identical request", actor="compliance:cy")
# An agent may cancel only as the subject's withdrawal: the low-privilege way to stop a request.
WITHDRAW = CancelInput(reason="The subject withdrew it by phone", withdrawn_by_subject=True, actor="agent:eve")
EXTEND = ExtendInput(reason="The request covers nine years of support history", actor="compliance:ed")
CLOSES: dict[str, tuple[Any, Any, str]] = {
    "deny": (DSR.deny, DENY, "denial"), "withdraw": (DSR.cancel, WITHDRAW, "cancellation")}


def hold(fakes: FakeActivities, activity: str, when: Callable[[Any], bool]) -> list[Any]:
    """Make the step fail as a database or relay slow to answer would (retried until `heal`);
    returns its attempts, as they come (`request.until(lambda _: tried)`: it is under way)."""
    tried: list[Any] = []

    def counted(arg: Any) -> bool:
        if when(arg):
            tried.append(arg)
            return True
        return False

    fakes.fail(activity, lambda: ConnectionRefusedError("no answer yet"), when=counted)
    return tried


async def answered_while_held(stack: FastStack, request: Request, held: list[Any], update: Any,
                              body: Any) -> RequestState:
    """A decision's answer while one of its steps is held (`hold`): the officer is answered
    after ANSWER_WITHIN with the steps still owed, not after the policy's threshold
    (execute_update does not move the test server's clock: only the sleep does)."""
    deciding = asyncio.ensure_future(request.handle.execute_update(update, body))
    await request.until(lambda _: held)
    await stack.sleep(ANSWER_WITHIN + timedelta(seconds=1))
    return await asyncio.wait_for(deciding, 20)


async def replays(stack: FastStack, request: Request) -> None:
    """The request's history replays against the workflow code: the paths taken here (the
    `answer-after-extension` patch among them) are deterministic."""
    history = await request.handle.fetch_history()
    replayer = Replayer(workflows=[DSR, SystemTaskWorkflow], data_converter=stack.env.client.data_converter)
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None


async def awaiting_approval(stack: FastStack) -> Request:
    request = await stack.open(request_type=RequestType.access, approval_required=True)
    await request.until(lambda s: s.status == "awaiting_approval")
    return request
