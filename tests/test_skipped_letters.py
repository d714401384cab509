"""A letter staff skip after its step failed is settled (patch `skipped-letter-settled`): an
attempt cut off inside the SMTP transaction may have handed it to the relay, and one still under
way may send it later. Before, the skip left it as it was: the request went on as if the letter had
not gone, and nothing stopped a late attempt from sending it after staff had written by hand."""

from __future__ import annotations

import uuid

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.letters import LetterActivities, deliver_letter, letter_key_of, message_id_for
from api.console.view import describe_event
from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from schemas.steps import RetryStepInput, SkipStepInput
from schemas.workflow import LetterJob
from tests.staff_answers import replays
from tests.support import letters_for, unique_email
from tests.workflow_stack import FastStack, stack_fixture  # noqa: F401 (the fixture)
from workers.dsr_worker import activity_context
from workflows.dsr import DataSubjectRequestWorkflow as DSR

BROKEN = "template acknowledgement.txt.j2 not found"
ACKNOWLEDGED = {"verification_required": False}


def _acknowledgement(job: LetterJob) -> bool:
    return job.purpose == "acknowledgement"


@pytest.mark.parametrize("went", [True, False], ids=["it-went-after-all", "it-had-not-gone"])
async def test_a_skipped_letter_is_settled_so_a_late_attempt_never_sends_it(stack: FastStack, went: bool):
    fakes = stack.fakes
    fakes.fail("send_letter", lambda: ValueError(BROKEN), when=_acknowledgement)
    request = await stack.open()
    await request.until(lambda s: s.trouble is not None and s.trouble.step == "send_letter")
    if went:  # an attempt its step gave up on: the relay took the letter after all
        await fakes.letter_went(LetterJob(request_id=request.id, purpose="acknowledgement", key="1"))

    await request.handle.execute_update(DSR.skip_step, SkipStepInput(note="Acknowledged by phone", actor="staff:ivy"))

    final = await request.result()
    assert final.status == "completed" and final.trouble is None
    assert fakes.skips_settled == [("acknowledgement", went)]
    assert fakes.subject_letters(request.id) == (["acknowledgement", "response"] if went else ["response"])
    await replays(stack, request)


async def test_a_settle_that_fails_can_only_be_retried(stack: FastStack):
    """The settle is the skip's record: staff cannot skip it too (a late attempt could then still
    send the letter), only retry it once the database is back."""
    fakes = stack.fakes
    fakes.fail("send_letter", lambda: ValueError(BROKEN), when=_acknowledgement)
    fakes.fail("settle_skipped_letter", lambda: ValueError("the database refused the write"))
    request = await stack.open()
    await request.until(lambda s: s.trouble is not None and s.trouble.step == "send_letter")
    await request.handle.execute_update(DSR.skip_step, SkipStepInput(note="Acknowledged by phone", actor="staff:ivy"))
    flagged = await request.until(lambda s: s.trouble is not None and s.trouble.step == "settle_skipped_letter")
    assert flagged.trouble is not None and not flagged.trouble.skippable
    assert flagged.trouble.about == "acknowledgement letter"

    fakes.heal("settle_skipped_letter")
    await request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="staff:ivy"))
    final = await request.result()
    assert final.status == "completed" and fakes.skips_settled == [("acknowledgement", False)]
    assert fakes.subject_letters(request.id) == ["response"]


async def _request(pool, settings) -> str:
    row, _ = await create_request(pool, NewRequest(type="access", subject={"email": unique_email("skip")},
                                                   identity_attested=True),
                                  loaded_policy=load_policy(settings.policy_path), secret=load_secret_key(settings),
                                  actor="test", idempotency_key=None)
    # As registering it would (prepare_request), which the acknowledgement's dates need.
    await pool.execute("UPDATE dsr_requests SET due_date = current_date + 30, current_due_date = current_date + 30 "
                       "WHERE id = $1", row["id"])
    return str(row["id"])


async def _settled(pool, request_id: str) -> list[dict]:
    return [r["data"] for r in await pool.fetch(
        "SELECT data FROM audit_events WHERE request_id = $1 AND event_type = 'letter.skip_settled'",
        uuid.UUID(request_id))]


async def test_the_settle_withdraws_a_letter_not_sent_and_records_one_that_went(pool, settings, mail_sink):
    """The real step, PostgreSQL and the SMTP sink: a letter no attempt had sent never goes after
    the skip (a late attempt is refused for good); one that went is recorded as gone, once."""
    ctx = activity_context(settings, pool)
    letters = LetterActivities(ctx)
    unsent = LetterJob(request_id=await _request(pool, settings), purpose="acknowledgement", key="1",
                       params=ACKNOWLEDGED)
    assert await letters.settle_skipped_letter(unsent) is False
    with pytest.raises(ApplicationError, match="withdrawn before it went") as refused:
        await ActivityEnvironment().run(deliver_letter, ctx, unsent)
    assert refused.value.non_retryable
    assert letters_for(mail_sink, unsent.request_id) == []
    key = letter_key_of(unsent.request_id, "acknowledgement", "1")
    assert await _settled(pool, unsent.request_id) == [
        {"purpose": "acknowledgement", "went": False, "message_id": message_id_for(key)}]

    sent = LetterJob(request_id=await _request(pool, settings), purpose="acknowledgement", key="1",
                     params=ACKNOWLEDGED)
    await ActivityEnvironment().run(deliver_letter, ctx, sent)  # the attempt the step had given up on
    assert await letters.settle_skipped_letter(sent) is True
    assert await letters.settle_skipped_letter(sent) is True  # a retry of the step: one record
    assert [m["Message-ID"] for m in letters_for(mail_sink, sent.request_id)] == \
        [message_id_for(letter_key_of(sent.request_id, "acknowledgement", "1"))]
    (went,) = await _settled(pool, sent.request_id)
    # What staff read on the request's timeline.
    assert describe_event({"event_type": "letter.skip_settled", "data": went}) == \
        "Skipped letter settled (acknowledgement: it had gone out after all)"
    assert describe_event({"event_type": "letter.skip_settled", "data": {**went, "went": False}}) == \
        "Skipped letter settled (acknowledgement: withdrawn, it never goes)"
