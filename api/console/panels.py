"""The request page's plain-form panels (the team's, the notes, deferred erasures, a resume, a
dispute of accuracy): each posts to a route of its own, which checks that the request exists and
answers by sending the browser back to its panel, with the outcome or the refusal signed in the
address (api/console/refusals.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from api.problems import Problem, field_errors
from dsrflow.stores.requests_store import get_request


async def request_or_404(pool: Any, request_id: str) -> dict[str, Any]:
    """The request's row (a panel may say its law's words: its `regime`), or 404."""
    if (row := await get_request(pool, request_id)) is None:
        raise Problem(404, "Request not found", f"There is no request {request_id}.")
    return row


def back_to_panel(request_id: str, anchor: str, **params: str) -> RedirectResponse:
    """Back to the request's page at its panel `anchor`, with `params` (signed) in the address."""
    query = f"?{urlencode(params)}" if params else ""
    return RedirectResponse(f"/console/requests/{request_id}{query}#{anchor}", status_code=303)


def form_problems(exc: ValidationError) -> str:
    """A form's invalid fields, each named with what is wrong, in one line."""
    return "; ".join(f"{e['field']}: {e['message']}" for e in field_errors(exc.errors()))
