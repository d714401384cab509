"""What the console's pages show, worked out from the data: days-left badges, which actions the
signed-in role may take now, the Temporal UI link, the timezone each listed request's days are
counted in, a refusal's days in words, and live regions that a page polls and that answer 204 while nothing has changed. The words staff read for codes (an audit event, a status, a
regime, a denial's ground...) are the evidence pack's too (api/read_models/event_words.py)."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

import asyncpg
from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from api.pages import PAGE_HEADERS, render_fragment
from api.read_models.event_lines import describe_event as describe_event  # shared with the evidence pack
from api.read_models.event_words import WORDS as WORDS  # the console's templates write codes with these
from api.read_models.event_words import day_words
from api.staff_actions import STAFF_ACTIONS, Situation
from api.state import AppState
from dsrflow.domain.deadlines import receipt_date_for
from dsrflow.i18n import language_name
from dsrflow.settings import Settings
from policy.controller import Defaults
from schemas.requests import RequestStatus
from schemas.vocabulary import Language
from schemas.workflow import workflow_id_for

SOON_DAYS = 7
# A day as the workflows and the API write one in a message ("it must be answered by 2026-12-30");
# a moment's ("2026-12-30T10:00") has no word boundary after its day, and stays whole.
_ISO_DAY = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
# Each language named in itself, as the subject who writes in it would name it.
LANGUAGE_NAMES = {lang.value: language_name(lang) for lang in Language}


@dataclass(frozen=True)
class Badge:
    css: str  # overdue | soon | later | closed
    text: str
    # The due date beside it is counted from receipt only until the subject verifies (UK GDPR:
    # schemas/clock_start.py), and moves then: the earliest it can be, not the day it is due.
    provisional: bool = False


def days_left_badge(days_left: int | None, status: RequestStatus, *, clock_waits: bool = False) -> Badge:
    """Overdue in red, due within a week in amber, later in green; closed requests in grey. A
    request whose month has not started (`clock_waits`) counts no days: it is due a month after
    its subject verifies (before, a UK request awaiting verification showed the days left to, and
    then was "overdue" by, a date that verification moves later)."""
    if status.is_closed:
        return Badge("closed", "closed")
    if clock_waits:
        return Badge("later", "provisional: due 1 month after verification", provisional=True)
    if days_left is None:
        return Badge("later", "no due date yet")
    if days_left < 0:
        return Badge("overdue", f"overdue by {-days_left} day{'s' if days_left != -1 else ''}")
    if days_left == 0:
        return Badge("soon", "due today")
    return Badge("soon" if days_left <= SOON_DAYS else "later", f"{days_left} day{'s' if days_left != 1 else ''} left")


def policy_system_labels(state: AppState) -> dict[str, str]:
    """The systems of the policy in force by their labels, in the staff's language, as the console
    names them (a request's page prefers those of the plan it ran under)."""
    policy = state.policy.in_language(state.policy.policy.languages.staff.value)
    return {name: system.label for name, system in policy.systems.items()}


async def received_in(pool: asyncpg.Pool, request_ids: list[str]) -> tuple[dict[str, str], dict[str, date]]:
    """Each listed request's timezone, its policy version's (a version without one has the
    policy's default), the zone of its days in the queue or among the subject's other requests
    (its close); and the day it was received, the one its deadline counts from: that zone's day,
    or its law's place's where that is earlier (`receipt_date_for`), as its letters say."""
    rows = await pool.fetch(
        """SELECT r.id::text AS id, r.regime, r.received_at, v.content->'defaults'->>'timezone' AS zone
             FROM dsr_requests r LEFT JOIN policy_versions v ON v.version = r.policy_version
            WHERE r.id = ANY($1::uuid[])""", [uuid.UUID(i) for i in request_ids])
    zones = {row["id"]: row["zone"] or Defaults().timezone for row in rows}
    return zones, {row["id"]: receipt_date_for(row["received_at"], zones[row["id"]], row["regime"]) for row in rows}


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


def days_in_words(message: str, language: str) -> str:
    """A message worded for every reader (a workflow's refusal, as the REST API's 409 gives it),
    each ISO day in it as the console writes a day (long_date, as the `longdate` filter does):
    "20. Dezember 2026" on a German console. A workflow words no day for a language (its history
    must replay the same); a day the calendar lacks ("2026-02-30") stays as it came."""
    return _ISO_DAY.sub(lambda found: day_words(found.group(), language), message)
