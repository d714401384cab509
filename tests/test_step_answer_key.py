"""A retry or a skip names the failed step it answers (`trouble`, the key the caller read), and the
workflow's validator refuses it when another step fails by then: nothing can come between that
check and the answer, as it can between the API's own check (api/service.py `require_step_shown`,
tests/test_redteam_stale_step_answers.py) and the update a moment later. Before, the update
answered whichever step failed when it arrived: a skip meant for the acknowledgement's letter
recorded the response's, failed since, as sent by hand. On the time-skipping server."""

from __future__ import annotations

from schemas.steps import RetryStepInput, SkipStepInput
from tests.staff_answers import replays
from tests.workflow_stack import FastStack, refused, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR

BROKEN = "the relay refused the letter for good"


def _letters(*purposes: str):
    return lambda job: job.purpose in purposes


async def test_an_answer_sent_for_a_step_failed_before_does_not_answer_the_one_failing_now(stack: FastStack):
    fakes = stack.fakes
    fakes.fail("send_letter", lambda: ValueError(BROKEN), when=_letters("acknowledgement", "response"))
    request = await stack.open()
    first = (await request.until(lambda s: s.trouble is not None)).trouble
    assert first is not None and first.about == "acknowledgement letter"

    # Staff answer the acknowledgement's failure by its key; the response's letter fails next.
    await request.handle.execute_update(DSR.skip_step, SkipStepInput(
        note="Acknowledged by phone", trouble=first.key, actor="staff:ivy"))
    second = (await request.until(lambda s: s.trouble is not None and s.trouble.key != first.key)).trouble
    assert second is not None and second.about == "response letter"

    # The same skip again (a stale page, a double press): refused, naming both; nothing answered.
    for update, body in ((DSR.skip_step, SkipStepInput(note="Acknowledged by phone", trouble=first.key, actor="staff:ivy")),
                         (DSR.retry_step, RetryStepInput(trouble=first.key, actor="staff:ivy"))):
        said = await refused(request.handle.execute_update(update, body))
        assert f"sent for ({first.key})" in said and f"failing now is another ({second.key})" in said, said
    state = await request.state()
    assert state.trouble == second and state.trouble.answered_by is None

    # Answered by its own key, the response's letter goes.
    fakes.heal("send_letter")
    await request.handle.execute_update(DSR.retry_step, RetryStepInput(trouble=second.key, actor="staff:ivy"))
    final = await request.result()
    assert final.status == "completed" and final.trouble is None
    assert fakes.subject_letters(request.id) == ["response"]
    assert fakes.skips_settled == [("acknowledgement", False)]
    await replays(stack, request)


async def test_an_answer_that_names_no_step_answers_the_one_failing(stack: FastStack):
    """Scripts written before `trouble` existed answer whichever step fails, as before."""
    fakes = stack.fakes
    fakes.fail("send_letter", lambda: ValueError(BROKEN), when=_letters("acknowledgement"))
    request = await stack.open()
    await request.until(lambda s: s.trouble is not None)
    fakes.heal("send_letter")
    await request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="staff:ivy"))
    final = await request.result()
    assert final.status == "completed"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
