"""The console's cookies and the CSRF tokens bound to them.

A console form proves it was served by us to this browser by sending back `csrf_token`, a keyed
hash (DSRFLOW_SECRET_KEY) of the session id: a synchronizer token tied to the session without
storing anything more. Before sign-in the sign-in form is bound the same way to a short-lived
nonce cookie, so nobody can sign a victim's browser in with the attacker's token. JavaScript
(htmx) sends the token in the `X-CSRF-Token` header instead of a form field.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from api.forms import read_form
from dsrflow.crypto.hashing import keyed_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.settings import Settings

SESSION_COOKIE = "dsrflow_session"
SIGN_IN_COOKIE = "dsrflow_sign_in"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def session_binding(session_id: str) -> str:
    return f"session:{session_id}"


def sign_in_binding(nonce: str) -> str:
    return f"sign-in:{nonce}"


def token_for(settings: Settings, binding: str) -> str:
    return keyed_hash(load_secret_key(settings), "csrf", binding)


def csrf_token(request: Request, settings: Settings) -> str:
    """The token this page's forms must send back (templates: `{{ csrf_token() }}`).

    Bound to the signed-in session, or on the sign-in page to its nonce."""
    binding = getattr(request.state, "csrf_binding", None)
    if binding is None:
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            raise RuntimeError("csrf_token() needs a signed-in console request or the sign-in page")
        binding = session_binding(session_id)
    return token_for(settings, binding)


async def csrf_valid(request: Request, settings: Settings, binding: str) -> bool:
    """Whether the request carries the token for `binding` (header, or form field)."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(_FORMS):
        value = (await read_form(request)).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return sent is not None and hmac.compare_digest(sent.encode(), token_for(settings, binding).encode())


def cookie_secure(request: Request, settings: Settings) -> bool:
    """Secure cookies when the browser reaches us over https (directly or through a proxy whose
    public address is https)."""
    public = settings.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")
