"""Staff alerts sent by the scheduled sweeps (activities/request_start_sweep.py, the deferred
erasure sweep in activities/deferred_processors.py), which no workflow step waits on: an alert the
relay refuses for good must stop no sweep, and one a dead sweep handed to the relay must be
recorded even when no run asks for it again. Each goes through `deliver_letter` with its key, so
it is sent at most once (activities/outbox.py)."""

from __future__ import annotations

from email.message import EmailMessage

from temporalio import activity

from activities.context import ActivityContext
from activities.errors import failure_message, refused_for_good
from activities.letters import deliver_letter, letter_key_of, letter_recorder, message_id_for
from activities.outbox import Sent, send_once
from activities.outbox_withdrawal import handed_over
from activities.staff_alert_words import alert_about
from dsrflow.domain.audit import append_event
from schemas.workflow import LetterJob, LetterReceipt


async def sweep_alert(ctx: ActivityContext, job: LetterJob) -> LetterReceipt | None:
    """A sweep's staff alert, once (`deliver_letter`); None if the relay refuses it for good (a
    5yz reply: a policy rejection, a staff address it does not take). Such a refusal is recorded
    on the request (`letter.refused`, with the relay's reply, no address) and that alert is not
    tried again: the same message is refused again, and a sweep runs every few minutes. Anything
    else (the relay or the database away) propagates, for the sweep's retry. Before, one alert
    refused for good failed the whole sweep on every run, so its other requests' alerts and
    records never came."""
    letter_key = letter_key_of(job.request_id, job.purpose, job.key)
    refused = f"letter:{letter_key}:refused"
    if await ctx.pool.fetchval("SELECT EXISTS (SELECT FROM audit_events WHERE event_key = $1)", refused):
        return None
    try:
        return await deliver_letter(ctx, job)
    except Exception as exc:
        if not refused_for_good(exc):
            raise
        reply = failure_message(exc)
    async with ctx.pool.acquire() as conn:
        await append_event(conn, event_key=refused, request_id=job.request_id, event_type="letter.refused",
                           actor="sweep", data={"purpose": job.purpose, "message_id": message_id_for(letter_key),
                                                "to_staff": job.to_staff, "reply": reply,
                                                # What it was about, as its `letter.sent` would say
                                                # (kind and system, nothing of the subject): the
                                                # timeline read "alert to staff" of any refused one.
                                                **(alert_about(job.params) if job.to_staff else {})})
    # The request's id (no personal data) tells the operator, alerted by DsrStaffAlertsRefused, which to open.
    activity.logger.error("staff alert refused for good by the mail relay",
                          extra={"request_id": job.request_id, "purpose": job.purpose, "reply": reply})
    return None


async def record_handed_alerts(ctx: ActivityContext) -> int:
    """Record each staff alert a dead sender handed to the relay that nobody asked for again
    (outbox_withdrawal.py `handed_over`): a sweep killed once the relay had it, whose condition passed
    before the next run (the request closed, the stretch ended, the day went by). Recorded as a
    retry would (`letter.sent`, its stored copy, `mail.unconfirmed`), nothing sent; an alert
    asked for again meanwhile is recorded once, by whichever gets there first. How many."""
    recorded = 0
    for row in await handed_over(ctx.pool):
        bare = EmailMessage()
        bare["Message-ID"] = row["message_id"]
        letter_key = row["mail_key"].removeprefix("letter:")
        if await send_once(ctx.pool, ctx.mailer, row["mail_key"], bare, request_id=row["request_id"],
                           on_sent=letter_recorder(letter_key, row["request_id"], row["copy"])) is Sent.ALREADY:
            recorded += 1
    return recorded
