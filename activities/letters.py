"""Sending letters: each at most once, recorded as evidence, with the dsrflow headers.

A letter's key (request, purpose, key) is unique in `sent_letters`. The message goes out through
the outbox (activities/outbox.py): claimed before the SMTP transaction, its evidence row written
when it is marked sent, so a retried activity finds the row and sends nothing, and a crash outside
the SMTP transaction never sends twice. The Message-ID derives from the key, so the one resend the
outbox allows (a sender that died inside the SMTP transaction) is recognisable as the same message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.citations import regime_name
from activities.context import ActivityContext
from activities.heartbeat import heartbeating
from activities.letter_closed_for import closed_for_context
from activities.letter_kept_closed import KEPT_AT_CLOSE, kept_at_close
from activities.letter_labels import denial_label, staff_type_label, type_label
from activities.letter_message import compose_letter
from activities.letter_objection import decision_summary
from activities.letter_outcome import response_outcome
from activities.letter_progress import overtaken, progress_context
from activities.letter_refusals import (
    accuracy_dispute,
    letter_refuses,
    names_authority_after_any_outcome,
    refuses_in_part,
    refuses_outright,
    remedies_context,
)
from activities.letter_stopped import (
    DONE_SYSTEMS,
    STOPPED_RUNS,
    called_off,
    done_so_far,
    stopped_actions,
    stopped_runs,
    stopped_sentence,
)
from activities.letter_templates import letter_wording, render_letter
from activities.outbox import OnSent, Sent, send_once
from activities.outbox_withdrawal import settle
from activities.restrictions import lift_letter_context
from activities.staff_alert_words import alert_about
from dsrflow.crypto.hashing import keyed_hash, token_hash
from dsrflow.domain.appeals import complaint_form
from dsrflow.domain.appeals_deferred import CLOSED_FOR
from dsrflow.domain.audit import append_event
from dsrflow.domain.deadlines import receipt_date, receipt_date_for
from dsrflow.domain.references import short_reference
from dsrflow.i18n import worded
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.metrics import letter_sent
from dsrflow.infra.writes import Write
from dsrflow.stores.kept_copies import RESPONSE_SENT
from dsrflow.stores.requests_store import get_request, get_request_with
from policy.model import Policy
from schemas.workflow import LetterJob, LetterReceipt

# Params that travel through the workflow as ISO strings and reach templates as dates.
_DATE_PARAMS = {"new_due_date", "lift_on"}
_DATETIME_PARAMS = {"expired_at", "expires_at", "package_expires_at"}


def message_id_for(letter_key: str) -> str:
    return f"<{hashlib.sha256(letter_key.encode()).hexdigest()[:32]}@dsrflow>"


def _coerce(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    for key in _DATE_PARAMS & out.keys():
        out[key] = date.fromisoformat(out[key])
    for key in _DATETIME_PARAMS & out.keys():
        if isinstance(out[key], str):
            out[key] = datetime.fromisoformat(out[key])
    return out


# Letters that close a request unanswered, which may have been carried out in part by then.
_CLOSINGS = {"denial", "cancellation"}
# Letters that close a request without deciding it (a denial decides it).
_UNDECIDED_CLOSINGS = {"closed_unverified", "cancellation"}
# Letters that decide nothing the subject asked: a restriction lifted, a complaint's progress.
_DECIDING_NOTHING = {"restriction_lift", "complaint_progress"}
# Request types whose action changes a system (an access only reads it).
_CHANGING = {"erasure", "rectification", "restriction", "objection"}


def named_systems(systems: list[str], row: dict[str, Any], policy: Policy) -> list[str]:
    """The labels of the systems where a request closed unanswered had already changed something,
    or been asked to and may still (the workflow's `acted_in`, `asked_in`: workflows/refusals.py): a
    subject who withdraws an erasure half-way, or whose request is refused after part of it was
    done, learns what was done."""
    if row["request_type"] not in _CHANGING:
        return []
    return [policy.system_label(s) for s in systems]


def greeted_name(row: Mapping[str, Any]) -> str | None:
    """The name a letter greets the subject by: only once the address's owner is known to have
    made the request (staff attested it, or the owner verified it). Before, anyone could open a
    request for any address with a "name" of 200 characters, and the controller's own signed
    acknowledgement and verification letters opened with it ("Dear customer, your account is
    suspended, confirm at ..."): a phishing text in our name, even asking the owner to confirm an
    erasure they never asked for. Until then, "Hello,"."""
    confirmed = row.get("attested_by") is not None or row.get("verified_at") is not None
    return row["subject_name"] if confirmed else None


def letter_language(policy: Policy, row: dict[str, Any], job: LetterJob) -> str:
    """Staff read their alerts in the controller's working language; a subject reads the language
    of their request."""
    return policy.languages.staff.value if job.to_staff else str(row["language"])


async def build_context(ctx: ActivityContext, row: dict[str, Any], job: LetterJob, language: str) -> dict[str, Any]:
    """The letter's context, its texts (the policy's and ours) in `language`."""
    loaded = await ctx.policy(row["policy_version"])
    policy = loaded.in_language(language)
    # The sentences written here speak the law's words as the templates do: "personal information"
    # under the CCPA and PIPEDA; staff alerts keep the language's own.
    t = worded(language, letter_wording(job.purpose, row["regime"]))
    context: dict[str, Any] = {
        "controller": policy.controller.model_dump(mode="json"),
        "request": {
            "id": str(row["id"]),
            "type": row["request_type"],
            "type_label": (staff_type_label if job.purpose == "staff_alert" else type_label)(
                row["request_type"], row["regime"], t),
            "regime": row["regime"],
            "regime_name": regime_name(row["regime"], t),
            # The date the deadline counts from, so a letter and its due date agree: the earlier of
            # the controller's and the law's place's (a staff alert says the same day).
            "received_date": receipt_date_for(row["received_at"], policy.defaults.timezone, row["regime"]),
            "due_date": row["due_date"],
            "extended_due_date": row["extended_due_date"],
            "current_due_date": row["current_due_date"],
            "appeal_of": (row["details"] or {}).get("appeal_of"),
            "objection_scope": (row["details"] or {}).get("objection_scope"),
            # A UK complaint's reasons: a letter says we have them, never repeats them.
            "complaint_reasons_given": bool((row["details"] or {}).get("complaint_reasons")),
        },
        "subject": {"name": greeted_name(row), "email": row["subject_email"]},
        # The portal opens in the letter's language.
        "portal_url": f"{ctx.settings.base_url}/portal?lang={language}",
        # The letter's times (a code's or a link's expiry) are the controller's, as its dates are:
        # in the zone of the policy version the request runs under, not the machine's or UTC.
        "timezone": policy.defaults.timezone,
    }
    params = _coerce(job.params)

    def remedies() -> dict[str, Any]:
        # The complaint form on this request (UK) takes refusals: a letter deciding nothing gives the address.
        form = complaint_form(short_reference(row["id"]), language, ctx.settings.base_url)
        appeal = bool(context["request"]["appeal_of"])
        # Lifting a restriction refuses nothing, and an appeal closed unverified or by staff is
        # not decided: neither offers an appeal nor speaks of one (`remedies_context`).
        undecided = job.purpose in _DECIDING_NOTHING or (appeal and job.purpose in _UNDECIDED_CLOSINGS)
        return remedies_context(policy, row["regime"], row["country"], appeal=appeal, undecided=undecided,
                                t=t, form_url=None if job.purpose in _DECIDING_NOTHING else form,
                                request_type=row["request_type"])

    if job.purpose == "staff_alert":
        params["warning_days"] = policy.deadline_warnings_days
        # The detail names systems by the labels of the policy version the request runs under.
        params["systems"] = {system: spec.label for system, spec in policy.systems.items()}
    if job.purpose == "denial":
        params["reason_label"] = denial_label(params["reason_code"], row["regime"], t)
    if refuses_outright(job.purpose, params):
        params["remedies"] = remedies()
    if job.purpose == "extension" and policy.remedies_for(row["regime"], row["country"]).complaint_on_extension:
        params["complaint"] = remedies()  # not a refusal: only the right to complain of the extension
    if job.purpose == "restriction_lift":
        params.update(await lift_letter_context(ctx, row, policy, t))
        # The regime's authority and courts, as a refusal names them (not `remedies`: lifting a
        # restriction refuses nothing the subject asked for).
        params["complaint"] = remedies()
    if job.purpose == "complaint_progress":
        # The letters go on the controller's days (workflows/complaint_progress.py counts from its
        # midnight), so the next is promised from its day of receipt, which may be a day after London's.
        params.update(progress_context(policy, row["regime"], receipt_date(row["received_at"], policy.defaults.timezone),
                                       params, remedies()))
    if job.purpose in _CLOSINGS:  # older workflows sent neither
        # A system still asked (a job at the processor) may still act, or is being called off: not stopped.
        acted, asked = done_so_far(params, row)
        params["kept_at_close"], acted = kept_at_close(row, policy, loaded.policy, t, acted)  # what holds kept
        params["stopped"] = [stopped_sentence(stopped, t) for stopped in stopped_runs(row, policy)
                             if stopped.system not in asked and stopped.system not in acted]
        # A workflow that sends `acted_in` tells what was changed: the letter says plainly that
        # nothing, or only part, was done, not "we have not acted on your request, or not on all of
        # it" (kept for workflows before it, and for a request that only reads: it changes nothing).
        if "acted_in" in params and row["request_type"] in _CHANGING:
            params["done_before_close"] = "part" if acted or asked or params["stopped"] else "nothing"
        params["acted_in"] = named_systems(acted, row, policy)
        params["asked_in"], params["called_off_in"] = (named_systems(s, row, policy) for s in called_off(asked, row, policy))
    if job.purpose == "response":
        report = params.pop("report", {})
        link, expires = None, None
        if report.get("package"):
            link, expires = await issue_package_link(ctx, report["package"]["package_id"],
                                                     policy.package_link_days)
        outcome = response_outcome(report, policy, link, expires, t, source=loaded.policy, regime=row["regime"],
                                   language=language, since=row.get("kept_at_close"))  # what holds kept, now
        outcome["actions"] += stopped_actions(stopped_runs(row, policy), t)
        decision = params.pop("decision", None)
        if decision:
            outcome["summary"] = decision_summary(decision, row["regime"], t)
            # Nothing was run on this path (workflows/dsr.py): the letter says the processing
            # continues, never that nothing was found.
            outcome["processing_continues"] = bool(decision["compelling_grounds"])
        params = {"outcome": outcome, **params}
        if refuses_in_part(outcome, decision):
            params["remedies"] = remedies()
        elif context["request"]["appeal_of"] and names_authority_after_any_outcome(row["regime"]):
            # A UK complaint's outcome names the Commissioner, a CPA appeal's the Attorney General,
            # even when we now do all that was asked (`names_authority_after_any_outcome`); it
            # refuses nothing.
            params["complaint"] = remedies()
    if "remedies" in params:  # a correction refused: what the subject can do about the data they contest
        params["remedies"]["accuracy_dispute"] = accuracy_dispute(job.purpose, params, row["regime"],
                                                                  row["request_type"], context["portal_url"], t)
    if closed := closed_for_context(row, job.purpose, params, ctx.settings.base_url, language):
        params["closed_for"] = closed  # appeals closed for this one, which now decides nothing
    context.update(params)
    return context


async def issue_package_link(ctx: ActivityContext, package_id: str, days: int) -> tuple[str, datetime]:
    """The download link of a package. The token is derived from the secret (so a retried letter
    carries the same link) and only its hash is stored. The link is valid for `days` from the
    response that carries it: while that letter has not gone (its step failed and waits for
    staff, the relay refused it), each render starts the days again, so a letter that goes out
    late never names a date already past (dsrflow/stores/kept_copies.py `purge_expired` spares
    the package meanwhile). Before, the days ran from the first render."""
    token = keyed_hash(ctx.secret, "package-token", package_id)
    expires = datetime.now(UTC) + timedelta(days=days)
    stored = await ctx.pool.fetchval(
        f"""UPDATE packages p SET token_hash = $2,
                   expires_at = CASE WHEN p.expires_at IS NULL OR NOT {RESPONSE_SENT} THEN $3 ELSE p.expires_at END
            WHERE p.id = $1 RETURNING p.expires_at""",
        package_id, token_hash(token), expires,
    )
    # The portal's page of the package, whose button downloads it (api/public/portal.py).
    return f"{ctx.settings.base_url}/portal/packages/{token}", stored or expires


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
# letter frame finds withheld links by it (api/console/request_page.py).
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
