"""A request id however a UUID may be spelt, before any route reads it.

Python reads `{...}`, `urn:uuid:...`, upper case and no dashes as one UUID; PostgreSQL found a
row by some of them and refused others, Temporal knows a request's workflow by the lower-case
dashed form only, and every per-request limit and audit key counts a spelling apart. So the
segment after `requests/` of every request route (staff, console, public, portal) is written
back in that one form here, once, and no route sees another spelling.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

_REQUEST_ROUTE = re.compile(r"(/(?:v1/requests|v1/public/requests|console/requests|portal/requests)/)([^/]+)")


def canonical_id(request_id: str) -> str:
    """A request id as we write it (lower case, dashes); anything that is no UUID as it came
    (no request has it)."""
    try:
        return str(uuid.UUID(request_id))
    except ValueError:
        return request_id


class CanonicalRequestIds:
    """Rewrites a request route's id segment to its canonical spelling (module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (found := _REQUEST_ROUTE.match(scope["path"])):
            spelt = found.group(2)
            if (canonical := canonical_id(spelt)) != spelt:
                path = found.group(1) + canonical + scope["path"][found.end():]
                scope = {**scope, "path": path, "raw_path": quote(path).encode()}
        await self.app(scope, receive, send)
