"""A letter sent for a request, as the subject saw it, for the console's request page: in a
sandboxed frame that may run nothing, codes and links withheld in the stored copy."""

from __future__ import annotations

import re
from functools import partial
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from activities.letters import WITHHELD
from api.auth import Staff, require_console_role
from api.deps import Pool
from api.pages import PAGE_HEADERS, problem_pages
from api.problems import Problem
from api.read_models.staff_reach import letter_readable, may_read
from dsrflow.domain.references import canonical_uuid

router = APIRouter(prefix="/console/requests", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))
# Letters are the controller's own HTML: shown in a sandboxed frame that may run nothing.
_LETTER_HEADERS = {**PAGE_HEADERS, "X-Frame-Options": "SAMEORIGIN",
                   "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                   "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"}
# The stored copy of a link it withheld (a code's, a package's: activities/letters.py `kept_context`).
_WITHHELD_HREF = re.compile(rf'\shref="{re.escape(WITHHELD)}"')
_ANCHOR = re.compile(r"<a\s", re.IGNORECASE)


def _readable_copy(body: str) -> str:
    """A stored letter as the frame shows it: a withheld link is no link (it led to `[withheld]`,
    a console address that is no letter), and the others open a tab of their own (inside the
    frame they opened the portal, which refuses to be framed, or a site nobody could leave)."""
    return _ANCHOR.sub('<a target="_blank" rel="noopener noreferrer" ', _WITHHELD_HREF.sub("", body))


@router.get("/{request_id}/letters/{purpose}/{key}", response_class=HTMLResponse)
async def letter(staff: Annotated[Staff, require_console_role("agent")], request_id: str, purpose: str, key: str,
                 pool: Pool) -> HTMLResponse:
    """A sent letter as the subject saw it (codes and links withheld in the stored copy)."""
    # A path that names no letter (an id that is none, a NUL PostgreSQL cannot compare) is one
    # more letter not found, on the console's page, not a JSON error.
    rid = canonical_uuid(request_id)
    body = (await pool.fetchval("SELECT body_html FROM sent_letters WHERE letter_key = $1", f"{rid}:{purpose}:{key}")
            if rid is not None and "\x00" not in purpose + key
            and letter_readable(partial(may_read, staff.has_role), purpose, key) else None)
    if body is None:
        raise Problem(404, "Letter not found", "No such letter was sent for this request.")
    return HTMLResponse(_readable_copy(body), headers=_LETTER_HEADERS)
