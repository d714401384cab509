"""A letter staff skip after its step failed is settled (patch `skipped-letter-settled`): an
attempt cut off inside the SMTP transaction may have handed it to the relay, and one still under
way may send it later. Before, the skip left it as it was: the request went on as if the letter had
not gone, and nothing stopped a late attempt from sending it after staff had written by hand.
A verification round whose step gave up (`settle_verification_round`) is settled the same way."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.letters import LetterActivities, deliver_letter, letter_key_of, message_id_for
from activities.verification import VerificationActivities
from api.console.view import describe_event
from devstack.processes import free_port
from devstack.smtp_sink import _EmlWriter, read_mailbox
from dsrflow.domain.appeals import check_appeal
from policy.model import load_policy
from schemas.requests import NewRequest
from schemas.steps import RetryStepInput, SkipStepInput
from schemas.verification import IssueChallenge
from schemas.workflow import LetterJob, workflow_id_for
from tests.process_support import died, worker_to_kill
from tests.staff_answers import replays
from tests.support import api_client, letters_for, live_view, staff_headers, stored_request, unique_email
from tests.workflow_stack import FastStack, stack_fixture  # noqa: F401 (the fixture)
from workers.dsr_worker import activity_context, build_worker
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


async def _settled(pool, request_id: str) -> list[dict]:
    return [r["data"] for r in await pool.fetch(
        "SELECT data FROM audit_events WHERE request_id = $1 AND event_type = 'letter.skip_settled'",
        uuid.UUID(request_id))]


async def test_the_settle_withdraws_a_letter_not_sent_and_records_one_that_went(pool, settings, mail_sink):
    """The real step, PostgreSQL and the SMTP sink: a letter no attempt had sent never goes after
    the skip (a late attempt is refused for good); one that went is recorded as gone, once."""
    ctx = activity_context(settings, pool)
    letters = LetterActivities(ctx)
    unsent = LetterJob(request_id=await stored_request(pool, settings, "skip"), purpose="acknowledgement", key="1",
                       params=ACKNOWLEDGED)
    assert await letters.settle_skipped_letter(unsent) is False
    with pytest.raises(ApplicationError, match="withdrawn before it went") as refused:
        await ActivityEnvironment().run(deliver_letter, ctx, unsent)
    assert refused.value.non_retryable
    assert letters_for(mail_sink, unsent.request_id) == []
    key = letter_key_of(unsent.request_id, "acknowledgement", "1")
    assert await _settled(pool, unsent.request_id) == [
        {"purpose": "acknowledgement", "went": False, "message_id": message_id_for(key), "refusal": False}]

    sent = LetterJob(request_id=await stored_request(pool, settings, "skip"), purpose="acknowledgement", key="1",
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


async def test_a_refusal_staff_sent_by_hand_can_be_appealed(pool, settings, mail_sink):
    """A VCDPA denial whose letter could not go (the relay refused it), skipped by staff who sent
    it by hand: the subject received a refusal, so its appeal is opened. Before, only a letter we
    sent counted as a refusal, and the appeal was refused as "that request was not refused"."""
    email = unique_email("by-hand")
    rid = await stored_request(pool, settings, "by-hand", regime="vcdpa", email=email)
    denial = LetterJob(request_id=rid, purpose="denial", key="1",
                       params={"reason_code": "other", "explanation": "Needed to defend a pending claim."})
    assert await LetterActivities(activity_context(settings, pool)).settle_skipped_letter(denial) is False
    assert (await _settled(pool, rid))[0]["refusal"] is True

    appeal = await check_appeal(pool, NewRequest(type="access", subject={"email": email}, appeal_of=rid,
                                                 identity_attested=True))
    assert (appeal.regime.value, str(appeal.appeal_of)) == ("vcdpa", rid)


async def _handed_over(pool, letter_key: str, request_id: str) -> None:
    """What a sender leaves when it dies right after handing its letter to the relay."""
    await pool.execute("INSERT INTO mail_outbox (mail_key, request_id, message_id, state) "
                       "VALUES ($1, $2, $3, 'data_sent')",
                       f"letter:{letter_key}", uuid.UUID(request_id), message_id_for(letter_key))


async def _evidence(pool, request_id: str) -> tuple[list[str], list[str], list[str]]:
    """The request's letters on record, its audit events about mail, and its outbox's states."""
    rid = uuid.UUID(request_id)
    letters = [r["body_text"] for r in await pool.fetch("SELECT body_text FROM sent_letters WHERE request_id = $1", rid)]
    events = [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM audit_events WHERE request_id = $1 AND event_type LIKE ANY('{letter.%,mail.%}') "
        "ORDER BY seq", rid)]
    states = [r["state"] for r in await pool.fetch("SELECT state FROM mail_outbox WHERE request_id = $1", rid)]
    return letters, events, states


async def test_a_letter_whose_sender_died_after_handing_it_over_is_put_on_record_by_the_settle(
        pool, settings, mail_sink):
    """A sender that died after the relay had the letter left it unrecorded (`data_sent`). Before,
    the skip's settle said "it had gone out after all" but wrote no copy: the request's letters
    lacked one the subject had received. Now the settle records it as a retry of the step would:
    its copy, `letter.sent`, and `mail.unconfirmed` naming its Message-ID; once, and nothing sent."""
    letters = LetterActivities(activity_context(settings, pool))
    job = LetterJob(request_id=await stored_request(pool, settings, "skip"), purpose="acknowledgement", key="1",
                    params=ACKNOWLEDGED)
    await _handed_over(pool, letter_key_of(job.request_id, "acknowledgement", "1"), job.request_id)
    assert await letters.settle_skipped_letter(job) is True
    assert await letters.settle_skipped_letter(job) is True  # a retry of the step: one record
    copies, events, states = await _evidence(pool, job.request_id)
    assert len(copies) == 1 and "Thank you for your request." in copies[0]
    assert events == ["mail.unconfirmed", "letter.sent", "letter.skip_settled"]
    assert states == ["sent"]
    assert letters_for(mail_sink, job.request_id) == []  # the relay has it from the dead sender


class _RefusingRelay(_EmlWriter):
    """The sink's writer, refusing every acknowledgement for good (554 at the end of DATA)."""

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        if b"X-DSR-Purpose: acknowledgement" in envelope.original_content:
            return "554 5.7.1 rejected by the relay's policy"
        return await super().handle_DATA(server, session, envelope)


async def test_a_refused_letter_waits_for_staff_at_once_and_its_skip_survives_a_worker_killed_mid_settle(
        settings, dev_server, pool, tmp_path):
    """Against a real relay: its permanent refusal (a 5yz reply) fails the acknowledgement's step
    at once, for staff, instead of retrying until the attention threshold. Compliance skips it, and
    the worker dies after the settle fenced the letter off but before the audit trail heard: the
    next worker settles it once (never sent, `letter.skip_settled` once) and the request completes."""
    relay = Controller(_RefusingRelay(tmp_path / "mail", None), hostname="127.0.0.1", port=free_port())
    relay.start()
    client = dev_server.client
    own = settings.model_copy(update={"task_queue": f"skip-{uuid.uuid4().hex[:6]}", "smtp_port": relay.port})
    try:
        async with (worker_to_kill(own, client, tmp_path, failpoints="letter-skip-fenced") as worker,
                    api_client(own, client, own.task_queue) as http):
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "erasure", "subject": {"email": unique_email("refused")}, "identity_attested": True})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            trouble = await _trouble(http, pool, rid)
            assert trouble["step"] == "send_letter" and trouble["skippable"] and not trouble["transient"]
            assert "554 5.7.1 rejected by the relay's policy" in trouble["message"]
            skipping = asyncio.ensure_future(http.post(
                f"/v1/requests/{rid}/skip-step", headers=await staff_headers(pool, "compliance"),
                json={"note": "Acknowledged by phone"}))
            await died(worker, tmp_path)
            async with build_worker(client, own, pool, task_queue=own.task_queue):
                skipped = await skipping
                await client.get_workflow_handle(workflow_id_for(rid)).result()
    finally:
        relay.stop()
    assert skipped.status_code == 200, skipped.text
    settled = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1 AND event_type = 'letter.skip_settled'",
                               uuid.UUID(rid))
    assert [(r["data"]["purpose"], r["data"]["went"]) for r in settled] == [("acknowledgement", False)]
    # The acknowledgement withdrawn; staff's alert of the failed step and the response went.
    outbox = await pool.fetch("SELECT state FROM mail_outbox WHERE request_id = $1 ORDER BY claimed_at", uuid.UUID(rid))
    assert [r["state"] for r in outbox] == ["withdrawn", "sent", "sent"]
    sent = [m["X-DSR-Purpose"] for m in read_mailbox(tmp_path / "mail") if m["X-DSR-Request-Id"] == rid]
    assert sent == ["staff_alert", "response"]


async def _trouble(http, pool, rid: str) -> dict:
    view = await live_view(http, await staff_headers(pool, "agent"), rid, lambda view: view["trouble"] is not None)
    return view["trouble"]


@pytest.mark.parametrize("went", [True, False], ids=["a-dead-sender-handed-it-over", "it-had-not-gone"])
async def test_a_settled_verification_round_records_a_code_that_went_with_the_code_withheld(
        pool, settings, mail_sink, went: bool):
    """The verification round's settle (`settle_verification_round`) is the same settle: a code a
    dead sender handed to the relay works (the round's challenge comes back) and its e-mail is on
    record, the code and link withheld from the copy; a code that had not gone never goes."""
    verification = VerificationActivities(activity_context(settings, pool))
    issue = IssueChallenge(request_id=await stored_request(pool, settings, "skip"), round=2, purpose="verification",
                           expires_at=datetime.now(UTC) + timedelta(hours=1))
    if went:
        await _handed_over(pool, letter_key_of(issue.request_id, "verification", "2"), issue.request_id)
    for _ in range(2):  # a retry of the step settles nothing twice
        settled = await verification.settle_verification_round(issue)
        assert (settled is not None) is went
    copies, events, states = await _evidence(pool, issue.request_id)
    if went:
        code, token = verification._secrets(issue, load_policy(settings.policy_path).policy.verification.code_digits)
        assert settled == await ActivityEnvironment().run(verification.issue_verification, issue)  # the same code
        assert len(copies) == 1 and "[withheld]" in copies[0]
        assert code not in copies[0] and token not in copies[0]
        assert (events, states) == (["mail.unconfirmed", "letter.sent"], ["sent"])
    else:
        with pytest.raises(ApplicationError, match="withdrawn before it went"):
            await ActivityEnvironment().run(verification.issue_verification, issue)  # a late attempt
        assert (copies, events, states) == ([], [], ["withdrawn"])
    assert letters_for(mail_sink, issue.request_id) == []
