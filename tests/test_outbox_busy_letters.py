"""A letter whose outbox claim a crash and a database restart cut off (hCX, after hCS's processor
e-mail in tests/test_crash_processor_asks.py): the outbox answers `busy` for SENDER_LIFETIME
(7 minutes), unable to tell a dead sender from one the restart cut off. A letter step, the settle
of a letter staff skipped, and a verification round's e-mail and settle each hear `busy` as a
retryable failure, send nothing meanwhile, and once no sender can still be alive the letter goes
once (or, settled, never goes). Their steps retry for longer than that (the guard below), so
none waits for staff; a resend inside the `resend_verification` update gives up after 30 s
(CALLER_WAITS), its caller told the earlier code still works, and its round is settled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.letters import LetterActivities, deliver_letter, letter_key_of, message_id_for
from activities.outbox import SENDER_LIFETIME
from activities.verification import VerificationActivities
from policy.model import Policy
from schemas.verification import IssueChallenge
from schemas.workflow import LetterJob
from tests.outbox_restart import claims_cut_off_by_a_restart
from tests.support import letters_for, stored_request
from workers.dsr_worker import activity_context
from workflows.dsr_steps import DEFAULT_ATTENTION_AFTER, MAILING, RETRY, SHORT

ACKNOWLEDGED = {"verification_required": False}


def test_letter_and_settle_steps_retry_past_a_claim_a_restart_cut_off():
    """The give-up of a letter step (MAILING) and of a settle (SHORT) is the larger of its time
    limit and the policy's `attention_after_minutes` (15 by default, run_step): its last attempt
    comes after SENDER_LIFETIME, so a `busy` letter goes late rather than waiting for staff. A
    policy below 8 minutes flags the step first (staff alerted), and its own retry after that
    many minutes sends it once."""
    assert Policy.model_fields["attention_after_minutes"].default == 15
    for timeouts in (MAILING, SHORT):
        give_up = max(timeouts["start_to_close_timeout"], DEFAULT_ATTENTION_AFTER)
        assert RETRY.maximum_interval is not None
        assert give_up - RETRY.maximum_interval > timedelta(seconds=SENDER_LIFETIME)


async def test_letters_cut_off_by_a_crash_and_a_database_restart_wait_and_go_once(settings, mail_sink, tmp_path):
    """Three claims left by a dead sender, then PostgreSQL restarted (its own server): the
    acknowledgement's step, the settle of a skipped one, a verification round's e-mail and its
    settle. Before SENDER_LIFETIME each is `busy` (retryable, nothing sent); after it the letter
    goes once, the skipped one is withdrawn, the round settled unsent (the subject's next code goes
    at once: a new round)."""
    async def claim(pool) -> tuple[list[LetterJob], IssueChallenge, list[str]]:
        jobs = [LetterJob(request_id=await stored_request(pool, settings, label, "erasure"),
                          purpose="acknowledgement", key="1", params=ACKNOWLEDGED)
                for label in ("busy-letter", "busy-skip")]
        issue = IssueChallenge(request_id=await stored_request(pool, settings, "busy-code"), round=2,
                               purpose="verification", expires_at=datetime.now(UTC) + timedelta(hours=1))
        keys = [letter_key_of(j.request_id, j.purpose, j.key) for j in jobs]
        keys.append(letter_key_of(issue.request_id, "verification", "2"))
        for key, rid in zip(keys, [*(j.request_id for j in jobs), issue.request_id], strict=True):
            await pool.execute("INSERT INTO mail_outbox (mail_key, request_id, message_id, state) "
                               "VALUES ($1, $2, $3, 'claimed')", f"letter:{key}", uuid.UUID(rid),
                               message_id_for(key))
        return jobs, issue, keys

    async with claims_cut_off_by_a_restart(tmp_path, "busy_letters", claim) as (pool, (jobs, issue, keys)):
        await _busy_then_settled(pool, settings, mail_sink, jobs, issue, keys)

async def _busy_then_settled(pool, settings, mail_sink, jobs: list[LetterJob], issue: IssueChallenge,
                             keys: list[str]) -> None:
    ctx = activity_context(settings, pool)
    letters, verification = LetterActivities(ctx), VerificationActivities(ctx)
    letter, skipped = jobs
    busy = [lambda: ActivityEnvironment().run(deliver_letter, ctx, letter),
            lambda: letters.settle_skipped_letter(skipped),
            lambda: ActivityEnvironment().run(verification.issue_verification, issue),
            lambda: verification.settle_verification_round(issue)]
    for attempt in busy:
        with pytest.raises(ApplicationError, match="being sent") as heard:
            await attempt()
        assert not heard.value.non_retryable  # the step tries again, and again, for its give-up
    assert [letters_for(mail_sink, rid) for rid in (letter.request_id, skipped.request_id, issue.request_id)] == \
        [[], [], []]

    # What the steps' retries find once no sender can still be alive.
    await pool.execute("UPDATE mail_outbox SET claimed_at = claimed_at - make_interval(secs => $1)",
                       SENDER_LIFETIME)
    for _ in range(2):  # the retry that sends it, and a later one that sends nothing
        await ActivityEnvironment().run(deliver_letter, ctx, letter)
    assert [m["Message-ID"] for m in letters_for(mail_sink, letter.request_id)] == [message_id_for(keys[0])]
    assert await _mail_events(pool, letter.request_id) == ["mail.resent", "letter.sent"]

    assert await letters.settle_skipped_letter(skipped) is False  # withdrawn: it never goes
    assert await verification.settle_verification_round(issue) is None
    assert letters_for(mail_sink, skipped.request_id) == letters_for(mail_sink, issue.request_id) == []
    # The subject's "try again in a minute": a new round, its own key, sent at once.
    await ActivityEnvironment().run(verification.issue_verification, issue.model_copy(update={"round": 3}))
    assert [m["Message-ID"] for m in letters_for(mail_sink, issue.request_id)] == \
        [message_id_for(letter_key_of(issue.request_id, "verification", "3"))]


async def _mail_events(pool, request_id: str) -> list[str]:
    return [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM audit_events WHERE request_id = $1 AND event_type LIKE ANY('{letter.%,mail.%}') "
        "ORDER BY seq", uuid.UUID(request_id))]
