"""Server-rendered HTML pages: one Jinja environment for the console, the portal, the evidence
pack and the dashboard.

Every template gets `csrf_token()` (the token its forms send back), `staff` (the signed-in member
of staff, once a console dependency has run) and `controller` (from the policy). Pages are never
cached, never framed.

A page route raises `Problem` like any API route; `problem_pages(template)` gives its router a
route class that renders the problem with that template (status and `Retry-After` kept) instead
of answering problem+json, which a browser would show as raw text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from activities.letter_templates import longdate, longdatetime
from activities.letters import TYPE_LABELS
from api.csrf import csrf_token
from api.deps import app_state
from api.problems import Problem

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}


def _page_context(request: Request) -> dict[str, Any]:
    # Templates render outside a route's dependencies too (the exception handlers' pages).
    state = app_state(request)
    return {"csrf_token": lambda: csrf_token(request, state.settings), "staff": getattr(request.state, "staff", None),
            "controller": state.policy.policy.controller}


templates = Jinja2Templates(directory=Path(__file__).with_name("templates"), context_processors=[_page_context])
# JSON to read on a page (autoescaped like any text; `tojson` would show "<" as \u003c).
templates.env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
templates.env.filters["longdate"] = longdate
templates.env.filters["longdatetime"] = longdatetime
templates.env.globals["TYPE_LABELS"] = TYPE_LABELS


# htmx swaps an answer into the element that asked for it (a live region polling, or an action's
# form). A whole page there would show a second header inside the page. So a page answering an
# action (an error, a refusal, the service unavailable) replaces the page's <main> instead, and
# one answering a poll is not swapped at all: the page stays as it is until a poll succeeds.
_HTMX_WHOLE_PAGE = {"HX-Retarget": "main", "HX-Reselect": "main", "HX-Reswap": "outerHTML"}
_HTMX_POLL = {"HX-Reswap": "none"}


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    htmx = ({} if not request.headers.get("hx-request")
            else _HTMX_POLL if request.method == "GET" else _HTMX_WHOLE_PAGE)
    return templates.TemplateResponse(
        request, name, context or {}, status_code=status_code, headers={**PAGE_HEADERS, **htmx, **(headers or {})}
    )


def render_fragment(request: Request, name: str, context: dict[str, Any]) -> str:
    """A template rendered to a string with the pages' common context (for live regions)."""
    return templates.get_template(name).render({**_page_context(request), "request": request, **context})


def prefers_html(accept: str | None) -> bool:
    """Whether an `Accept` header names HTML ahead of JSON, as a browser's does. `*/*` alone
    (curl, most HTTP libraries) is an API client's."""
    weights: dict[str, float] = {}
    for part in (accept or "").split(","):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[media.lower()] = weight
    html = weights.get("text/html", 0.0)
    return html > 0 and html >= weights.get("application/json", 0.0)


def problem_pages(template: str) -> type[APIRoute]:
    """A route class whose `Problem`s become `template` pages (context: `problem`)."""

    class ProblemPageRoute(APIRoute):
        def get_route_handler(self) -> Callable:
            handler = super().get_route_handler()

            async def route(request: Request) -> Response:
                try:
                    return await handler(request)
                except Problem as problem:
                    retry = problem.extra.get("retry_after")
                    return render(request, template, {"problem": problem}, status_code=problem.status,
                                  headers={"Retry-After": str(retry)} if retry else None)

            return route

    return ProblemPageRoute
