"""What the console's pages show, worked out from the data: days-left badges, the timeline's
words for each audit event, which actions the signed-in role may take now, the Temporal UI
link, and live regions that a page polls and that answer 204 while nothing has changed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from api.pages import PAGE_HEADERS, render_fragment
from api.staff_actions import STAFF_ACTIONS, Situation
from dsrflow.settings import Settings
from schemas.requests import RequestStatus
from schemas.workflow import workflow_id_for

SOON_DAYS = 7


@dataclass(frozen=True)
class Badge:
    css: str  # overdue | soon | later | closed
    text: str


def days_left_badge(days_left: int | None, status: RequestStatus) -> Badge:
    """Overdue in red, due within a week in amber, later in green; closed requests in grey."""
    if status.is_closed:
        return Badge("closed", "closed")
    if days_left is None:
        return Badge("later", "no due date yet")
    if days_left < 0:
        return Badge("overdue", f"overdue by {-days_left} day{'s' if days_left != -1 else ''}")
    if days_left == 0:
        return Badge("soon", "due today")
    return Badge("soon" if days_left <= SOON_DAYS else "later", f"{days_left} day{'s' if days_left != 1 else ''} left")


_EVENT_WORDS = {
    "request.created": "Request opened",
    "request.received": "Received; deadlines computed",
    "request.start_swept": "Started by the sweep: stored, but its start had been lost",
    "request.workflow_ended": "Stopped: its workflow ended while the request was open",
    "request.resumed": "Resumed: its workflow carries on from where it stopped",
    "plan.created": "Plan made under the request's policy version",
    "verification.succeeded": "Identity verified",
    "verification.failed": "Wrong verification code",
    "verification.locked": "Verification locked after too many wrong codes",
    "verification.resent": "New verification code sent",
    "deadline.extended": "Deadline extended",
    "deadline.overdue": "Due date passed",
    "letter.sent": "Letter sent",
    "letter.suppressed": "Letter not sent (retention request)",
    "package.built": "Access package built",
    "package.downloaded": "Package downloaded by the subject",
    "processor.callback": "Processor reported back",
    "processor.confirmed": "Processor confirmed by e-mail link",
    "processor.asked": "Processor asked by e-mail",
    "processor.reminded": "Processor reminded by e-mail",
    "task.retried": "Task retried",
    "task.resolved": "Task resolved by staff",
    "objection.decided": "Objection decided",
    "package.reviewed": "Package downloaded for review",
    "approval.granted": "Release approved",
    "step.failed": "A step failed",
    "step.resolved": "Failed step answered",
    "retention.applied": "Retention rule applied",
    "restriction.in_force": "Restriction in force",
    "restriction.lift_requested": "Restriction lift decided; the subject is told first",
    "restriction.lifted": "Restriction lifted in every system",
    "restriction.kept_from_erasure": "Restricted records kept from an erasure",
    "mail.converted": "Opened from an e-mail to the privacy address",
    "mail.attached": "E-mail attached",
    "package.purged": "Access package deleted",
    "processor.export_received": "Processor's export received",
    "processor_export.purged": "Processor's export deleted",
    "legal_hold.placed": "Legal hold placed",
    "legal_hold.released": "Legal hold released",
    "mail.resent": "Letter sent again",
    "mail.unconfirmed": "Letter delivery not confirmed",
    "letter.skip_settled": "Skipped letter settled",
    "staff.assigned": "Assigned",
    "staff.unassigned": "Assignment removed",
    "staff.note_added": "Internal note added",
    # An erasure a hold deferred, at a processor asked once the hold ended (activities/deferred_processors.py).
    "erasure.deferred_submitted": "Processor asked to erase what a hold had kept",
    "erasure.deferred_confirmed": "Processor confirmed the deferred erasure",
    "erasure.deferred_failed": "Processor did not carry out the deferred erasure",
    "erasure.deferred_retried": "Processor asked again to carry out the deferred erasure",
    "erasure.deferred_settled": "Deferred erasure recorded as done by other means",
}


def _step(data: Mapping[str, Any]) -> str:
    """A failed step: which letter or record it was (`about`, stored since 2026-12-02), or else its
    activity's name."""
    return str(data.get("about") or data.get("step"))


def describe_event(event: Mapping[str, Any], names: Mapping[str, str] | None = None) -> str:
    """One line for the timeline; the details that matter most beside the words (`names`: staff
    by actor and by `token:<id>`, for an assignment's assignee)."""
    kind, data = event["event_type"], event["data"] or {}
    words = _EVENT_WORDS.get(kind)
    if kind.startswith("status."):
        words = f"Status: {kind.removeprefix('status.').replace('_', ' ')}"
    elif kind.startswith("deadline.due_in_"):
        words = f"Deadline warning: {kind.removeprefix('deadline.due_in_').replace('_', ' ')} left"
    elif kind.startswith("task."):
        words = words or f"{data.get('system', 'system')} task {kind.removeprefix('task.').replace('_', ' ')}"
    # An event this table does not name yet still reads as words, never as `access.not_automated`.
    words = words or kind.replace(".", " ").replace("_", " ").capitalize()
    detail = {
        "letter.sent": data.get("purpose"),
        "letter.skip_settled": (f"{data.get('purpose')}: " + ("it had gone out after all" if data.get("went")
                                                           else "withdrawn, it never goes")) if "went" in data else None,
        "verification.succeeded": data.get("method"),
        "verification.failed": f"{data.get('attempts_left')} attempt(s) left" if "attempts_left" in data else None,
        "deadline.extended": f"{data.get('from')} → {data.get('to')}: {data.get('reason')}",
        "task.retried": data.get("system"), "task.resolved": data.get("system"),
        **{f"erasure.deferred_{what}": data.get("system")
           for what in ("submitted", "confirmed", "failed", "retried", "settled")},
        "step.failed": f"{_step(data)}: {data.get('message')}",
        "step.resolved": f"{_step(data)}: {data.get('resolution')}",
        "status.denied": data.get("reason_code"), "status.cancelled": data.get("reason"),
        "restriction.lift_requested": data.get("reason"),
        "restriction.kept_from_erasure": data.get("by"),
        "staff.assigned": (names or {}).get(f"token:{data.get('assignee')}", "a colleague"),
        "request.start_swept": f"{data.get('minutes_since_stored')} minutes after it was stored",
        "request.workflow_ended": data.get("ended"),
        "request.resumed": f"it had {data.get('ended')}: {data.get('reason')}",
    }.get(kind)
    return f"{words} ({detail})" if detail else words


def temporal_ui_link(settings: Settings, request_id: str) -> str:
    workflow_id = quote(workflow_id_for(request_id), safe="")
    return f"{settings.temporal_ui_url}/namespaces/{quote(settings.temporal_namespace, safe='')}/workflows/{workflow_id}"


def allowed_actions(role_of: Callable[[str], bool], situation: Situation) -> set[str]:
    """The actions this member of staff (`role_of`: whether they hold a role) may take on the
    request as it is now. A closed request takes none but those that act after its close (lifting
    a restriction in force); the workflow has the last word: a stale page's action is refused with
    its reason."""
    return {name for name, action in STAFF_ACTIONS.items() if role_of(action.role) and action.offered(situation)}


@dataclass(frozen=True)
class LiveRegion:
    """A region of a page that polls `poll_url` for itself. Its markup carries a version (a digest
    of what it shows); a poll naming the current version gets 204 and htmx leaves the region
    alone, so a half-typed form inside it survives until something really changed."""

    html: Markup
    version: str

    def response(self, request: Request, status_code: int = 200) -> Response:
        if request.query_params.get("v") == self.version and status_code == 200:
            return Response(status_code=204, headers={"Cache-Control": "no-store"})
        return HTMLResponse(str(self.html), status_code=status_code, headers=PAGE_HEADERS)


def live_region(request: Request, template: str, context: dict[str, Any], *, poll_url: str,
                region_id: str, every: str, notice: dict[str, Any] | None = None) -> LiveRegion:
    """`notice` (the outcome of an action) is shown once: the version is that of the region
    without it, so the next poll that finds nothing else changed leaves it on screen."""
    body = render_fragment(request, template, context)
    version = hashlib.sha256(body.encode()).hexdigest()[:16]
    if notice:
        body = render_fragment(request, template, {**context, **notice})
    separator = "&" if "?" in poll_url else "?"
    html = Markup('<div id="{}" hx-get="{}" hx-trigger="every {}" hx-swap="outerHTML" data-version="{}">').format(
        region_id, f"{poll_url}{separator}v={version}", every, version) + Markup(body) + Markup("</div>")
    return LiveRegion(html, version)
