"""Sending letters: each at most once, recorded as evidence, with the dsrflow headers.

A letter's key (request, purpose, key) is unique in `sent_letters`. The message goes out through
the outbox (activities/outbox.py): claimed before the SMTP transaction, its evidence row written
when it is marked sent, so a retried activity finds the row and sends nothing, and a crash outside
the SMTP transaction never sends twice. The Message-ID derives from the key, so the one resend the
outbox allows (a sender that died inside the SMTP transaction) is recognisable as the same message.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.context import ActivityContext
from activities.heartbeat import heartbeating
from activities.letter_templates import render_letter
from activities.outbox import Sent, send_once
from activities.processor_exports import missing_reasons
from activities.restrictions import lift_letter_context
from dsrflow.crypto.hashing import keyed_hash, token_hash
from dsrflow.domain.audit import append_event
from dsrflow.domain.deadlines import appeal_days, receipt_date
from dsrflow.infra.metrics import letter_sent
from dsrflow.stores.requests_store import get_request
from policy.model import Policy
from schemas.workflow import LetterJob, LetterReceipt, TaskResult

_ACTION_WORDS = {"erase": "erased", "rectify": "corrected", "restrict": "restricted",
                 "object": "stopped processing as you objected", "access": "found"}
_ART19_ACTIONS = {"erase", "rectify", "restrict"}
TYPE_LABELS = {
    "access": "access to your personal data (Art. 15 GDPR)",
    "portability": "a copy of your data in a portable format (Art. 20 GDPR)",
    "erasure": "erasure (right to be forgotten, Art. 17 GDPR)",
    "rectification": "rectification of inaccurate data (Art. 16 GDPR)",
    "restriction": "restriction of processing (Art. 18 GDPR)",
    "objection": "objection to processing (Art. 21 GDPR)",
}
# Each completes the denial letter's "This is because ...".
DENIAL_LABELS = {
    "manifestly_unfounded": "the request is manifestly unfounded (Art. 12(5) GDPR)",
    "excessive": "the request is excessive, in particular because of its repetitive character (Art. 12(5) GDPR)",
    "identity_not_established": "we could not establish your identity (Art. 12(6) GDPR)",
    "other": "of the reasons explained below",
}
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


def _readable(dataset: str) -> str:
    # Dataset names are identifiers ("support_requests"); the subject reads words.
    return dataset.replace("_", " ")


def _kept_item(kept: dict[str, Any], policy: Policy) -> dict[str, Any]:
    system = policy.systems[kept["system"]].label if kept["system"] in policy.systems else kept["system"]
    records = f"{kept['records']} record{'' if kept['records'] == 1 else 's'}"
    what = (f"{records} of {_readable(kept['dataset'])} in {system}" if kept["dataset"] != "all"
            else f"your data in {system}")
    if kept["hold_kind"] == "legal_claims":
        law = f"{kept['law']}; we review this hold by the date given"
    else:
        law = f"{kept['law']}; minimised to what that law requires"
    return {"what": what, "basis": kept["basis"], "law": law,
            "until": date.fromisoformat(kept["until"]) if kept.get("until") else None}


def _outcome(report: dict[str, Any], policy: Policy, package_link: str | None,
             package_expires_at: datetime | None) -> dict[str, Any]:
    """The response letter's account of what was done, from the execution report."""
    results = [TaskResult.model_validate(r) for r in report.get("results", [])]
    actions = [
        {"system": policy.systems[r.system].label if r.system in policy.systems else r.system,
         "category": ", ".join(sorted(map(_readable, r.datasets))) or "all records",
         "action": _ACTION_WORDS.get(r.action, r.action), "records": r.changed or r.found, "note": r.note}
        for r in results if r.found or r.changed
    ]
    package = report.get("package")
    if package:
        for system, count in package.get("systems", {}).items():
            label = policy.systems[system].label if system in policy.systems else system
            actions.append({"system": label, "category": "copy of your data",
                            "action": "included in your package", "records": count})
        for system, count in package.get("processor_files", {}).items():
            label = policy.systems[system].label if system in policy.systems else system
            actions.append({"system": label, "category": "copy of your data, as this processor sent it",
                            "action": "included in your package", "records": count, "unit": "file"})
    kept = [_kept_item(k, policy) for r in results for k in r.kept_records]
    told = sorted({policy.recipients[r.recipient].name for r in results
                   if r.recipient and r.recipient in policy.recipients and r.status == "done"
                   and r.action in _ART19_ACTIONS})
    # The letter itself says the request is completed and, after the actions, whom Art. 19 reached;
    # the summary is left for what only this request says (an objection decision).
    # Systems whose data the package could not include, and why: a refusal in part (Art. 15).
    missing = missing_reasons(package.get("missing", {}), policy) if package else []
    return {"summary": "", "actions": actions, "kept": kept, "informed": told, "missing": missing,
            "package_link": package_link, "package_expires_at": package_expires_at}


def decision_summary(decision: dict[str, Any]) -> str:
    """The objection response's account of compliance's Art. 21(1) decision."""
    explanation: str = decision["explanation"]
    return (
        "We considered your objection to processing based on our legitimate interests "
        "(Art. 21(1) GDPR). "
        + ("We have compelling legitimate grounds that override your interests, so the "
           "processing continues: " if decision["compelling_grounds"]
           else "We found no compelling grounds to continue, so we have stopped that processing. ")
        + explanation
    )


def remedies_context(policy: Policy, regime: str, country: str, *, appeal: bool) -> dict[str, Any]:
    """What the `_remedies` partial says in a letter that refuses in whole or in part (Art. 12(4)
    GDPR and its counterparts): the regime's authority, courts and, unless the request is itself
    an appeal, the appeal its law grants, with the statutory days to answer it."""
    remedies = policy.remedies_for(regime, country).model_dump(mode="json")
    if remedies["appeal"] is not None:
        remedies["appeal"] = None if appeal else {**remedies["appeal"], "days": appeal_days(regime)}
    return remedies


def refuses_in_part(outcome: dict[str, Any], decision: dict[str, Any] | None) -> bool:
    """A response that does not do all the subject asked: records kept (Art. 17(3)), data left out
    of a copy, processing that continues on compelling grounds (Art. 21(1))."""
    return bool(outcome["kept"] or outcome.get("missing") or (decision and decision["compelling_grounds"]))


# Letters that refuse, whatever their parameters; `cancellation` does unless the subject withdrew.
_REFUSALS = {"denial", "closed_unverified"}


async def build_context(ctx: ActivityContext, row: dict[str, Any], job: LetterJob) -> dict[str, Any]:
    loaded = await ctx.policy(row["policy_version"])
    policy = loaded.policy
    context: dict[str, Any] = {
        "controller": policy.controller.model_dump(mode="json"),
        "request": {
            "id": str(row["id"]),
            "type": row["request_type"],
            "type_label": TYPE_LABELS[row["request_type"]],
            "regime": row["regime"],
            # The date the deadline counts from, so a letter and its due date agree.
            "received_date": receipt_date(row["received_at"], policy.defaults.timezone),
            "due_date": row["due_date"],
            "extended_due_date": row["extended_due_date"],
            "current_due_date": row["current_due_date"],
            "appeal_of": (row["details"] or {}).get("appeal_of"),
        },
        "subject": {"name": row["subject_name"], "email": row["subject_email"]},
        "portal_url": f"{ctx.settings.base_url}/portal",
    }
    params = _coerce(job.params)

    def remedies() -> dict[str, Any]:
        return remedies_context(policy, row["regime"], row["country"],
                                appeal=bool(context["request"]["appeal_of"]))

    if job.purpose == "staff_alert":
        params["warning_days"] = policy.deadline_warnings_days
    if job.purpose == "denial":
        params["reason_label"] = DENIAL_LABELS[params["reason_code"]]
    if job.purpose in _REFUSALS or (job.purpose == "cancellation" and not params["withdrawn"]):
        params["remedies"] = remedies()
    if job.purpose == "extension" and policy.remedies_for(row["regime"], row["country"]).complaint_on_extension:
        params["complaint"] = remedies()  # not a refusal: only the right to complain of the extension
    if job.purpose == "restriction_lift":
        params.update(await lift_letter_context(ctx, row, policy))
    if job.purpose == "response":
        report = params.pop("report", {})
        link, expires = None, None
        if report.get("package"):
            link, expires = await issue_package_link(ctx, report["package"]["package_id"],
                                                     policy.package_link_days)
        outcome = _outcome(report, policy, link, expires)
        decision = params.pop("decision", None)
        if decision:
            outcome["summary"] = decision_summary(decision)
        params = {"outcome": outcome, **params}
        if refuses_in_part(outcome, decision):
            params["remedies"] = remedies()
    context.update(params)
    return context


async def issue_package_link(ctx: ActivityContext, package_id: str, days: int) -> tuple[str, datetime]:
    """The download link of a package. The token is derived from the secret (so a retried letter
    carries the same link) and only its hash is stored."""
    token = keyed_hash(ctx.secret, "package-token", package_id)
    expires = datetime.now(UTC) + timedelta(days=days)
    stored = await ctx.pool.fetchval(
        """UPDATE packages SET token_hash = $2, expires_at = coalesce(expires_at, $3)
           WHERE id = $1 RETURNING expires_at""",
        package_id, token_hash(token), expires,
    )
    return f"{ctx.settings.base_url}/v1/public/packages/{token}", stored or expires


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


async def _deliver(ctx: ActivityContext, job: LetterJob, secrets: dict[str, Any] | None) -> LetterReceipt:
    letter_key = f"{job.request_id}:{job.purpose}:{job.key}"
    message_id = message_id_for(letter_key)
    async with ctx.pool.acquire() as conn:
        if await conn.fetchval("SELECT 1 FROM sent_letters WHERE letter_key = $1", letter_key):
            return LetterReceipt(letter_key=letter_key, message_id=message_id, already_sent=True)
        row = await get_request(conn, job.request_id)
        if row is None:
            raise LookupError(f"request {job.request_id} not found")
        if not job.to_staff and not notifies_subject(row):
            await append_event(
                conn, event_key=f"letter:{letter_key}:suppressed", request_id=job.request_id,
                event_type="letter.suppressed", actor="workflow",
                data={"purpose": job.purpose, "origin": row["origin"],
                      "rule": (row["details"] or {}).get("retention_rule")},
            )
            return LetterReceipt(letter_key=letter_key, message_id=message_id, already_sent=False)
        context = await build_context(ctx, row, job)
        rendered = render_letter(job.purpose, {**context, **(secrets or {})})
        kept_context = {**context, **{k: "[withheld]" for k in (secrets or {})}}
        if context.get("outcome", {}).get("package_link"):
            # The stored copy must not open the subject's package.
            kept_context["outcome"] = {**context["outcome"], "package_link": "[withheld]"}
        kept = render_letter(job.purpose, kept_context)
        policy = (await ctx.policy(row["policy_version"])).policy
        recipient = policy.controller.staff_email if job.to_staff else row["subject_email"]

        message = EmailMessage()
        message["From"] = formataddr((policy.controller.name, policy.controller.sender_email))
        message["To"] = recipient
        message["Subject"] = rendered.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = message_id
        message["X-DSR-Request-Id"] = job.request_id
        message["X-DSR-Purpose"] = job.purpose
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")

    async def record(conn: asyncpg.Connection) -> None:
        # Marked sent with its evidence row and audit event, in one transaction (outbox.py).
        await conn.execute(
            """INSERT INTO sent_letters (letter_key, request_id, purpose, recipient, subject,
                                         message_id, body_text, body_html)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (letter_key) DO NOTHING""",
            letter_key, job.request_id, job.purpose, recipient, kept.subject, message_id,
            kept.text, kept.html,
        )
        await append_event(
            conn, event_key=f"letter:{letter_key}", request_id=job.request_id,
            event_type="letter.sent", actor="workflow",
            # A letter with the remedies refuses in whole or in part: such a request can be
            # appealed where the law grants it (dsrflow/domain/appeals.py).
            data={"purpose": job.purpose, "message_id": message_id, "to_staff": job.to_staff,
                  "refusal": "remedies" in context},
        )

    sent = await send_once(ctx.pool, ctx.mailer, f"letter:{letter_key}", message,
                           request_id=job.request_id, on_sent=record)
    if sent is Sent.BUSY:  # a live attempt is sending it: let this one retry after it
        raise ApplicationError("this letter is being sent by another attempt")
    if sent is Sent.ALREADY:
        return LetterReceipt(letter_key=letter_key, message_id=message_id, already_sent=True)
    letter_sent(job.purpose)
    activity.logger.info("letter sent", extra={"purpose": job.purpose})
    return LetterReceipt(letter_key=letter_key, message_id=message_id, already_sent=False)


class LetterActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    @activity.defn(name="send_letter")
    async def send_letter(self, job: LetterJob) -> LetterReceipt:
        return await deliver_letter(self.ctx, job)
