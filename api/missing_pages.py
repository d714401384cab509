"""A page for a browser at an address no route answers, on the portal's paths and the console's.

An address mistyped, cut short by a mail client's line break, or kept from an older version
(`/portal/nope`, a package link missing its last characters) answered a browser with the API's
JSON problem, `{"title": "Not Found"}`: a subject read code. A browser (its `Accept` names HTML
ahead of JSON) now gets the portal's problem page in its language, or the console's; an API
client still gets the problem as JSON, whatever the path.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.csrf import SESSION_COOKIE
from api.deps import app_state
from api.page_language import is_subject_page
from api.pages import prefers_html, render
from api.problems import Problem
from dsrflow.i18n import N_
from dsrflow.stores.staff_tokens import Staff, session_staff

# Statuses a route table answers for an address it does not serve (or not with this method).
_MISSING = (404, 405)
NOT_FOUND = N_("Page not found")
NOT_FOUND_DETAIL = N_("There is no page at this address. If you followed a link from one of our e-mails, "
                      "check that the whole link was copied.")


def install(app: FastAPI) -> None:
    """After api/problems.py's: its JSON answer stays the one for every other case."""
    json_answer = app.exception_handlers[StarletteHTTPException]

    async def page_or_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code not in _MISSING or not prefers_html(request.headers.get("accept")):
            return await json_answer(request, exc)  # type: ignore[misc]  # starlette's handler type is a union
        if is_subject_page(request):
            return render(request, "portal/problem.html",
                          {"problem": Problem(exc.status_code, NOT_FOUND, NOT_FOUND_DETAIL)}, status_code=exc.status_code)
        if request.url.path.startswith("/console"):
            # The console's header (its links, who is signed in) as on any of its pages, which
            # read the staff member from the request (api/pages.py's context).
            request.state.staff = await _signed_in(request)
            return render(request, "console/problem.html", {
                "problem": Problem(exc.status_code, NOT_FOUND, "There is no page of the console at this address.")},
                status_code=exc.status_code)
        return await json_answer(request, exc)  # type: ignore[misc]

    app.add_exception_handler(StarletteHTTPException, page_or_problem)


async def _signed_in(request: Request) -> Staff | None:
    """Who the console's session names, for its header; nobody when it names none, or when the
    database cannot say (the page says only that there is no such page)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    try:
        return await session_staff(await app_state(request).db(), session_id, used=False)
    except Exception:  # noqa: BLE001 - a header without the staff member beats no page at all
        return None
