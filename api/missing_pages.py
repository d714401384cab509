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

from api.pages import is_subject_page, prefers_html, render
from api.problems import Problem
from dsrflow.i18n import N_

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
        path = request.url.path
        template = ("portal/problem.html" if is_subject_page(request)
                    else "console/problem.html" if path.startswith("/console") else None)
        if template is None or exc.status_code not in _MISSING or not prefers_html(request.headers.get("accept")):
            return await json_answer(request, exc)  # type: ignore[misc]  # starlette's handler type is a union
        return render(request, template, {"problem": Problem(exc.status_code, NOT_FOUND, NOT_FOUND_DETAIL)},
                      status_code=exc.status_code)

    app.add_exception_handler(StarletteHTTPException, page_or_problem)
