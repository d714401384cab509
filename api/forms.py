"""Reading a posted HTML form (the portal's and the console's): text, as a browser sends it.

A browser percent-encodes every byte beyond ASCII in a URL-encoded body, and sends text as UTF-8.
Starlette reads what else comes without a word: raw bytes beyond ASCII as Latin-1, bytes that are
not UTF-8 as U+FFFD, and a file part as an upload whose `str()` a handler would store as its
repr. So every form is read here, once: a body that is not URL-encoded ASCII, a file where text is
expected, or text that was not UTF-8 is refused with 422 naming the field, before any handler or
the CSRF check reads a value. Handlers then read plain strings, and each form refuses control
characters beside the field, as its page shows its other errors (schemas/plain_text.py).
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from fastapi import Request
from starlette.datastructures import FormData

from api.problems import Problem

_URLENCODED = "application/x-www-form-urlencoded"


async def read_form(request: Request) -> FormData:
    """The request's form, checked (module doc); read once, then the same for every reader."""
    checked = getattr(request.state, "form", None)
    if checked is not None:
        return checked
    if request.headers.get("content-type", "").startswith(_URLENCODED):
        raw = await _body(request)
        if not raw.isascii():
            field = next(part for part in raw.split(b"&") if not part.isascii()).partition(b"=")[0]
            raise _refused(unquote_plus(field.decode("latin-1")),
                           "not URL-encoded: every byte beyond ASCII must be percent-encoded")
    form = await request.form()
    for name, value in form.multi_items():
        if not isinstance(value, str):
            raise _refused(name, "a file was sent where text is expected")
        if "\ufffd" in value:
            raise _refused(name, "not valid UTF-8 text")
    request.state.form = form
    return form


async def _body(request: Request) -> bytes:
    """The raw body; empty where FastAPI's `Form` parameters (the sign-in page's) read the form
    first: their values are still checked, as parsed."""
    try:
        return await request.body()
    except RuntimeError:  # "Stream consumed"
        return b""


def _refused(field: str, reason: str) -> Problem:
    """422 naming the field as every refusal of a field does (api/problems.py); a hostile name is
    shown cut short and escaped."""
    named = repr(field[:64])[1:-1]
    return Problem(422, "Invalid request", f"{named}: {reason}", errors=[{"field": named, "message": reason}])
