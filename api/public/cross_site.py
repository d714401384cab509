"""Public posts that a browser sends from another site's page are refused (403), before anything
is counted, read or stored.

The portal's forms and the public API carry no credential, so there is nothing to forge; but a
hostile page can make each of its visitors' browsers post a request from the visitor's own
address. Every visitor is then a client of their own, and the per-client limits
(api/ratelimit.py) stop nothing: only the ceiling of unverified requests bounds the whole.

What the browser tells decides, never a guess:
- `Sec-Fetch-Site` (sent by every current browser): `same-origin` (our own pages) and `none` (the
  user typed or bookmarked the address, or reloaded) pass. `same-site` is refused like
  `cross-site`: it spans every subdomain of our registrable domain, including those that serve
  what the controller does not write (a SaaS's customers' subdomains, a vendor's help desk on
  help.<domain>), and our own forms post same-origin (their CSP says `form-action 'self'`). The
  `Origin` fallback below accepts our origin only, so both ways say the same.
- Without it (browsers older than that), `Origin`: ours is the request's own scheme and host, or
  that of `DSRFLOW_PUBLIC_URL` (behind a proxy that ends TLS, the request itself is http).
  `null` (a sandboxed frame, a data: or file: page) is not ours.
- Neither header: no browser's cross-site post (curl, API clients, a browser too old to say),
  served as before.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

from api.csrf import SAFE_METHODS
from api.deps import app_state
from api.problems import Problem
from dsrflow.i18n import N_
from dsrflow.infra.logging import get_logger

log = get_logger(__name__)

# A page's words (api/templates/portal/problem.html translates them), and the API's.
TITLE = N_("Sent from another website")
DETAIL = N_("We did not accept this because your browser sent it from a page of another website. "
            "To ask us something, please use the form on our own pages.")
_PASSING = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    """Scheme, host and port (the default one written out), or None for what is no http(s) origin."""
    try:
        parts = urlsplit(url.strip().lower())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port that is no number
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or port is None:
        return None
    return parts.scheme, parts.hostname, port


def cross_site_reason(request: Request) -> str | None:
    """What says this post comes from another site's page (the header and its value), or None."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return None if fetch_site.strip().lower() in _PASSING else f"Sec-Fetch-Site: {fetch_site}"
    origin = request.headers.get("origin")
    if origin is None:
        return None
    ours = {_origin(f"{request.url.scheme}://{request.url.netloc}"), _origin(app_state(request).settings.base_url)}
    sent = _origin(origin)
    return None if sent is not None and sent in ours else f"Origin: {origin} is not this site's"


async def refuse_cross_site_posts(request: Request) -> None:
    """A dependency of every public route (api/public/__init__.py), resolved before the route's
    own (its rate-limit count among them). The portal's routes render the refusal as their
    problem page, in the subject's language; the API answers problem+json naming the `reason`."""
    if request.method in SAFE_METHODS:
        return
    reason = cross_site_reason(request)
    if reason is not None:
        # So that operators see a form of theirs on another site being refused (no path: a path
        # may hold a link's token).
        log.info("cross_site_post_refused", reason=reason)
        raise Problem(403, TITLE, DETAIL, reason=reason)
