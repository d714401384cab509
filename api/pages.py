"""Server-rendered HTML pages: one Jinja environment for the console and the portal.

Every template gets `csrf_token()` (the token its forms send back) and `staff` (the signed-in
member of staff, once a console dependency has run). Pages are never cached, never framed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.csrf import csrf_token

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}


def _page_context(request: Request) -> dict[str, Any]:
    return {"csrf_token": lambda: csrf_token(request), "staff": getattr(request.state, "staff", None)}


templates = Jinja2Templates(directory=Path(__file__).with_name("templates"), context_processors=[_page_context])


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, context or {}, status_code=status_code, headers=PAGE_HEADERS
    )
