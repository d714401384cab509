"""Sending letters: each at most once, recorded as evidence, with the dsrflow headers.

A letter's key (request, purpose, key) is unique in `sent_letters`. The message goes out through
the outbox (activities/outbox.py): claimed before the SMTP transaction, its evidence row written
when it is marked sent, so a retried activity finds the row and sends nothing, and a crash outside
the SMTP transaction never sends twice. The Message-ID derives from the key, so the one resend the
outbox allows (a sender that died inside the SMTP transaction) is recognisable as the same message.
"""

from __future__ import annotations

import hashlib
from functools import partial
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.context import ActivityContext
from activities.heartbeat import heartbeating
from activities.letter_context import build_context, letter_language
from activities.letter_kept_closed import KEPT_AT_CLOSE
from activities.letter_message import compose_letter
from activities.letter_progress import overtaken
from activities.letter_refusals import (
    letter_refuses,
)
from activities.letter_stopped import (
    DONE_SYSTEMS,
    STOPPED_RUNS,
)
from activities.letter_templates import render_letter
from activities.outbox import OnSent, Sent, send_once
from activities.outbox_withdrawal import settle
from activities.staff_alert_words import alert_about
from dsrflow.domain.appeals_deferred import CLOSED_FOR
from dsrflow.domain.audit import append_event
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.metrics import letter_sent
from dsrflow.infra.writes import Write
from dsrflow.stores.requests_store import get_request, get_request_with
from schemas.workflow import LetterJob, LetterReceipt


def message_id_for(letter_key: str) -> str:
    return f"<{hashlib.sha256(letter_key.encode()).hexdigest()[:32]}@dsrflow>"


def notifies_subject(row: dict[str, Any]) -> bool:
    """A request the controller opened itself under a retention rule writes to the subject only
    where the rule says so (`notify_subject`); staff letters go out whatever the origin."""
    return row["origin"] != "retention" or bool((row["details"] or {}).get("notify_subject"))


async def deliver_letter(
    ctx: ActivityContext, job: LetterJob, *, secrets: dict[str, Any] | None = None
) -> LetterReceipt:
    """Render and send one letter, at most once. `secrets` (a verification code and link) go into
    the message only: the stored copy shows them withheld. Heartbeats meanwhile (a slow relay, a
    database coming back: see workflows/dsr_steps.py MAILING)."""
    async with heartbeating():
        return await _deliver(ctx, job, secrets)


# What the stored copy of a letter shows instead of a secret (a code, a link): the console's
# letter frame finds withheld links by it (api/console/letter_copies.py).
WITHHELD = "[withheld]"


def letter_key_of(request_id: str, purpose: str, key: str) -> str:
    return f"{request_id}:{purpose}:{key}"


async def settle_letter(ctx: ActivityContext, job: LetterJob, *, secrets: dict[str, Any] | None = None) -> Sent:
    """Settle a letter whose step gave up on it while an attempt may still be under way: it never
    goes from now on (`WITHDRAWN`), unless it went already (`ALREADY`); `BUSY` while an attempt
    is sending it (activities/outbox_withdrawal.py `withdraw`). A letter that went is on record as sent, with
    its copy, as a retry of its step records it: one whose sender died after handing it to the
    relay had no record yet, so it gets it now (and `mail.unconfirmed`), and nothing is sent."""
    letter_key = letter_key_of(job.request_id, job.purpose, job.key)
    return await settle(ctx.pool, f"letter:{letter_key}", message_id_for(letter_key), request_id=job.request_id,
                        record=partial(deliver_letter, ctx, job, secrets=secrets))


# Read with the request: whether the letter went, tasks stopped or done (letter_stopped.py), what holds kept, appeals.
_LETTER_FACTS = ("jsonb_build_object('sent', EXISTS (SELECT FROM sent_letters WHERE letter_key = $2), "
                 f"'stopped', {STOPPED_RUNS}, 'done', {DONE_SYSTEMS}, 'kept', {KEPT_AT_CLOSE}, 'closed_for', {CLOSED_FOR})")


async def _deliver(ctx: ActivityContext, job: LetterJob, secrets: dict[str, Any] | None) -> LetterReceipt:
    letter_key = letter_key_of(job.request_id, job.purpose, job.key)
    message_id = message_id_for(letter_key)
    async with ctx.pool.acquire() as conn:
        row, facts = await get_request_with(conn, job.request_id, _LETTER_FACTS, letter_key)
        if row is None:
            raise LookupError(f"request {job.request_id} not found")
        sent_before, row["stopped_runs"], row["done_systems"], row["kept_at_close"], row["closed_for"] = (
            facts["sent"], facts["stopped"], facts["done"], facts["kept"], facts["closed_for"])
        if sent_before:
            return LetterReceipt(letter_key=letter_key, message_id=message_id, already_sent=True)
        if not job.to_staff and not notifies_subject(row):
            await append_event(
                conn, event_key=f"letter:{letter_key}:suppressed", request_id=job.request_id,
                event_type="letter.suppressed", actor="workflow",
                data={"purpose": job.purpose, "origin": row["origin"],
                      "rule": (row["details"] or {}).get("retention_rule")},
            )
            return LetterReceipt(letter_key=letter_key, message_id=message_id, already_sent=False)
        if job.purpose == "complaint_progress" and await overtaken(conn, row, letter_key):
            return LetterReceipt(letter_key=letter_key, message_id=message_id, already_sent=False)
        loaded = await ctx.policy(row["policy_version"])
        language = letter_language(loaded.policy, row, job)
        context = await build_context(ctx, row, job, language)
        rendered = render_letter(job.purpose, {**context, **(secrets or {})}, language)
        kept_context = {**context, **{k: WITHHELD for k in (secrets or {})}}
        if context.get("outcome", {}).get("package_link"):
            # The stored copy must not open the subject's package.
            kept_context["outcome"] = {**context["outcome"], "package_link": WITHHELD}
        # Most letters withhold nothing: their stored copy is the letter itself.
        kept = rendered if kept_context == context else render_letter(job.purpose, kept_context, language)
        policy = loaded.policy
        recipient = policy.controller.staff_email if job.to_staff else row["subject_email"]

        message = compose_letter(policy, rendered, recipient=recipient, message_id=message_id,
                                 request_id=job.request_id, purpose=job.purpose, language=language)

    # A letter with the remedies refuses in whole or in part: such a request can be appealed
    # where the law grants it (dsrflow/domain/appeals.py).
    copy = {"purpose": job.purpose, "to_staff": job.to_staff, "refusal": "remedies" in context,
            "recipient": recipient, "subject": kept.subject, "text": kept.text, "html": kept.html,
            **(alert_about(job.params) if job.to_staff else {})}
    # A staff alert's copy waits with its claim, for activities/sweep_alerts.py `record_handed_alerts`; a subject's letter is
    # only ever asked for again by its own step's retry, and its copy is personal data.
    sent = await send_once(ctx.pool, ctx.mailer, f"letter:{letter_key}", message, request_id=job.request_id,
                           on_sent=letter_recorder(letter_key, job.request_id, copy),
                           copy=copy if job.to_staff else None)
    if sent is Sent.BUSY:  # a live attempt is sending it: let this one retry after it
        raise ApplicationError("this letter is being sent by another attempt")
    if sent is Sent.WITHDRAWN:  # its step gave up on it and settled it unsent (`withdraw_letter`)
        raise ApplicationError("this letter was withdrawn before it went", non_retryable=True)
    if sent is Sent.ALREADY:
        return LetterReceipt(letter_key=letter_key, message_id=message_id, already_sent=True)
    letter_sent(job.purpose)
    activity.logger.info("letter sent", extra={"purpose": job.purpose})
    return LetterReceipt(letter_key=letter_key, message_id=message_id, already_sent=False)


def letter_recorder(letter_key: str, request_id: str, copy: dict[str, Any]) -> OnSent:
    """How a letter is recorded sent: marked with its evidence row (its stored `copy`) and audit
    event, in one statement (outbox.py)."""
    async def record(conn: asyncpg.Connection, marked: Write) -> None:
        await append_event(
            conn, event_key=f"letter:{letter_key}", request_id=request_id, event_type="letter.sent", actor="workflow",
            data={"purpose": copy["purpose"], "message_id": message_id_for(letter_key), "to_staff": copy["to_staff"],
                  "refusal": copy["refusal"], **{k: copy[k] for k in ("about", "about_system") if k in copy}},
            along=[marked, Write(
                """INSERT INTO sent_letters (letter_key, request_id, purpose, recipient, subject,
                                             message_id, body_text, body_html)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (letter_key) DO NOTHING""",
                (letter_key, request_id, copy["purpose"], copy["recipient"], copy["subject"],
                 message_id_for(letter_key), copy["text"], copy["html"]))],
        )
    return record


class LetterActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    @activity.defn(name="send_letter")
    async def send_letter(self, job: LetterJob) -> LetterReceipt:
        return await deliver_letter(self.ctx, job)

    @activity.defn(name="settle_skipped_letter")
    async def settle_skipped_letter(self, job: LetterJob) -> bool:
        """A letter staff skipped after its step failed, when an attempt may have got further
        than its step knew (cut off inside the SMTP transaction, or still under way): True if it
        went after all, False if it had not, and then it never goes. Either way the audit trail
        says so (`letter.skip_settled`). Retried while an attempt is sending it."""
        letter_key = letter_key_of(job.request_id, job.purpose, job.key)
        settled = await settle_letter(self.ctx, job)
        if settled is Sent.BUSY:
            raise ApplicationError("this letter is being sent right now")
        went = settled is Sent.ALREADY
        failpoint("letter-skip-fenced", letter_key)  # settled, and the trail not yet told
        async with self.ctx.pool.acquire() as conn:
            row = await get_request(conn, job.request_id)
            # Staff did its work by other means (sent it by hand): a refusal sent so can be
            # appealed like one we sent (dsrflow/domain/appeals.py).
            refusal = row is not None and await letter_refuses(self.ctx, row, job)
            await append_event(
                conn, event_key=f"letter:{letter_key}:skip-settled", request_id=job.request_id,
                event_type="letter.skip_settled", actor="workflow",
                data={"purpose": job.purpose, "went": went, "message_id": message_id_for(letter_key),
                      "refusal": refusal})
        return went
