"""What every server-rendered page shares (subject portal, staff console, evidence pack,
dashboard): one Jinja environment, the security headers, and errors shown as pages.

A route of a page router raises `Problem` like any API route; `problem_pages(template)` gives the
router a route class that renders it with that template (status and `Retry-After` kept) instead of
answering problem+json, which a browser would show as raw text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from activities.letter_templates import longdate, longdatetime
from activities.letters import TYPE_LABELS
from api.problems import Problem



def _common(request: Request) -> dict[str, Any]:
    """What every page may show: who the controller is (from the policy the API runs with)."""
    return {"controller": request.app.state.dsr.policy.policy.controller}


templates = Jinja2Templates(directory=Path(__file__).with_name("templates"), context_processors=[_common])
templates.env.filters["longdate"] = longdate
templates.env.filters["longdatetime"] = longdatetime
templates.env.globals["TYPE_LABELS"] = TYPE_LABELS

# Pages carry links with tokens (verification, downloads) and show request data: keep them out of
# caches, referrers and frames; scripts and styles only from our own /static.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return templates.TemplateResponse(
        request, template, context or {}, status_code=status,
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


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
                    return render(request, template, {"problem": problem}, status=problem.status,
                                  headers={"Retry-After": str(retry)} if retry else None)

            return route

    return ProblemPageRoute
