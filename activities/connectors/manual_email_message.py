"""The e-mail a processor asked by e-mail receives (manual_email.py): its request or a reminder, as
a MIME message with its headers, rendered in the controller's working language and the words of
the request's law (activities/processor_mail.py)."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from activities.connectors.base import ConnectorEnv, PermanentConnectorError, Subject
from activities.letter_message import set_subject
from activities.letters import message_id_for
from activities.processor_mail import asked_of_processor, render_processor_mail


class Addressee(NamedTuple):
    """The processor's privacy contact, from its system's config."""
    email: str
    name: str | None
    reminder_days: int  # the e-mail says when a reminder follows


async def processor_message(
    conn: Any, env: ConnectorEnv, to: Addressee, subject: Subject, purpose: str, action: str, *,
    scope: str | None, key: str, token: str, extra: dict[str, Any] | None = None, in_reply_to: str | None = None,
) -> EmailMessage:
    """`purpose`'s e-mail asking `to` for `action`, its Message-ID from `key` (the outbox's), its
    confirmation link from `token`."""
    request = await conn.fetchrow(
        "SELECT details, current_due_date, regime FROM dsr_requests WHERE id = $1", subject.request_id)
    if request is None:
        raise PermanentConnectorError(f"system {env.system_name}: request {subject.request_id} not found")
    details = request["details"] or {}
    if action == "object":
        scope = scope or details.get("objection_scope") or "direct_marketing"
    # Processors read the controller's working language; the e-mail speaks the request's law.
    title, instruction = asked_of_processor(action, scope, request["regime"], env.policy.languages.staff)
    controller = env.policy.controller
    # The date we must answer the subject by, while it is ahead: a lift, or an erasure asked
    # once a hold ended, comes after that answer, and told the processor a date long past to
    # act by (DPO audit).
    due = request["current_due_date"]
    zone = env.policy.defaults.timezone  # the controller's, as in every letter
    if action == "lift_restriction" or (due is not None and due < datetime.now(ZoneInfo(zone)).date()):
        due = None
    context = {
        "controller": controller.model_dump(mode="json"),
        "processor": {"label": env.system.label, "contact_name": to.name},
        "request": {"id": subject.request_id, "due_date": due, "regime": request["regime"]},
        "action": action,
        "action_title": title,
        "instruction": instruction,
        "corrections": sorted((details.get("corrections") or {}).items()) if action == "rectify" else [],
        "subject_email": subject.email,
        "confirm_url": f"{env.settings.base_url}/v1/callbacks/manual/{token}",
        "reminder_days": to.reminder_days,
        "upload": env.policy.processor_exports.model_dump(mode="json") if action == "access" else None,
        "timezone": zone,
        **(extra or {}),
    }
    rendered = render_processor_mail(purpose, context, env.policy.languages.staff)
    message = EmailMessage()
    message["From"] = formataddr((controller.name, str(controller.sender_email)))
    message["To"] = formataddr((to.name, to.email)) if to.name else to.email
    message["Reply-To"] = str(controller.privacy_email)
    set_subject(message, rendered.subject)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id_for(key)
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message["Auto-Submitted"] = "auto-generated"
    message["X-DSR-Request-Id"] = subject.request_id
    message["X-DSR-Purpose"] = purpose
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


__all__ = ["Addressee", "processor_message"]
