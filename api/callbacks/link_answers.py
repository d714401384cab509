"""Whether a processor's signed link may still answer its task, and the answer recorded: one rule
for the link's page (api/callbacks/processor_pages.py), its confirmation and its upload
(api/callbacks/manual_confirm.py, api/callbacks/processor_uploads.py), checked again in the
statement that records the answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.callbacks.link_refusals import UploadRefused, answered_already, settled_otherwise
from policy.exports import ProcessorExports
from schemas.plain_text import kept_text
from schemas.requests import RequestStatus
from schemas.workflow import RUNS_AFTER_CLOSE

# A task in one of these has its answer (staff resolved it, or it settled otherwise): the link
# records nothing more. A task waiting, or needing attention, still takes the processor's answer.
SETTLED = ("done", "not_found")
_CLOSED = tuple(s.value for s in RequestStatus if s.is_closed)
# The condition, on manual_tasks `m`, that the link may still record an answer: checked again in
# the statement that records it, so that a request closing meanwhile records nothing.
# An erasure asked of the processor after a legal-claims hold ended (activities/deferred_processors.py)
# belongs to a request closed long ago, whose task was settled as kept: its link answers it as
# long as the sweep follows it.
DEFERRED_WAITING = """EXISTS (SELECT 1 FROM deferred_erasures d WHERE d.external_id = m.external_id
                        AND d.system = m.system AND d.done_at IS NULL AND d.failed_at IS NULL)"""
# A restriction's lift runs on its closed request (completed, or closed part-way with the
# restriction in force: workflows/restriction_lifecycle.py), so its link answers it until its task
# settles, as an open request's does. Before, the page said the link had expired: the processor,
# having lifted, could not say so, and the lift's task waited for its completion timeout and staff.
STILL_OPEN = f"""m.confirmed_at IS NULL AND ({DEFERRED_WAITING} OR (
    (m.action = '{RUNS_AFTER_CLOSE}'
     OR NOT EXISTS (SELECT 1 FROM dsr_requests r WHERE r.id = m.request_id AND r.status = ANY($3::text[])))
    AND NOT EXISTS (SELECT 1 FROM system_tasks s WHERE (s.request_id, s.system, s.action) = (m.request_id, m.system, m.action)
                                                   AND s.status = ANY($4::text[]))))"""


NOTE_MAX = 2000


def plain_note(text: str) -> str | None:
    """A processor's note as we keep it (schemas/plain_text.py `kept_text`): a NUL made
    PostgreSQL refuse the whole answer, shown to the processor as raw JSON."""
    return kept_text(text, NOTE_MAX)


async def record_answer(conn: Any, external_id: str, note: str | None) -> datetime | None:
    """Mark the task answered (with the note), if its link may still answer it; None otherwise."""
    answered: datetime | None = await conn.fetchval(
        f"""UPDATE manual_tasks m SET confirmed_at = now(), confirmation_note = $2
             WHERE m.external_id = $1 AND {STILL_OPEN} RETURNING confirmed_at""",
        external_id, note, list(_CLOSED), list(SETTLED))
    return answered


def limits_of(task: dict[str, Any]) -> ProcessorExports:
    """The limits of the policy version the request runs under (the defaults where it has none)."""
    return ProcessorExports.model_validate(task.get("exports_policy") or {})


def refuse_if_closed(task: dict[str, Any], limits: ProcessorExports) -> None:
    """An answered task takes no more files (409); a closed request, or a link not used within
    `link_days` of our last e-mail about it, has expired (403); a task settled otherwise (staff
    resolved it) records nothing more (409), unless the task is an erasure asked after a hold
    ended (`deferred`, see DEFERRED_WAITING). A restriction's lift (`RUNS_AFTER_CLOSE`) runs on its closed
    request: its link is not refused for that. The same for an upload and a confirmation."""
    if task["confirmed_at"] is not None:
        raise answered_already()
    if RequestStatus(task["request_status"]).is_closed and not task.get("deferred") and task.get("action") != RUNS_AFTER_CLOSE:
        raise UploadRefused(403, lambda t: t.gettext("This link has expired: the request it belongs to is closed."))
    if task.get("task_status") in SETTLED and not task.get("deferred"):
        raise settled_otherwise(lambda t: t.gettext(
            "We have already settled this task by other means, so this link no longer records anything. If you "
            "have news about it, please reply to our e-mail."))
    if datetime.now(UTC) > task["last_mailed_at"] + timedelta(days=limits.link_days):
        raise UploadRefused(403, lambda t: t.ngettext(
            "This link has expired: it was valid for %(days)d day after our last e-mail. Please reply to that "
            "e-mail and we will send a new one.",
            "This link has expired: it was valid for %(days)d days after our last e-mail. Please reply to that "
            "e-mail and we will send a new one.", limits.link_days) % {"days": limits.link_days})
