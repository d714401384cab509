"""Rate limits on what anyone may call without signing in: submitting a request and verifying it,
through the portal or the public API, per client IP and per e-mail address.

Fixed windows counted in Postgres (`rate_limit_counters`), so that every API process shares the
count: an attacker cannot multiply the limit by landing on another process. Buckets are keyed
hashes, so the table holds no address and no IP. A refused call is a `Problem` 429 with
`retry_after`: the API answers it as problem+json with a `Retry-After` header, the portal as a page.

The client IP is what the server sees (`request.client`); behind a reverse proxy, run uvicorn with
`--proxy-headers --forwarded-allow-ips=<proxy>` so that it is the subject's, not the proxy's.
"""

from __future__ import annotations

import time

from fastapi import Request

from api.problems import Problem
from dsrflow.hashing import keyed_hash
from dsrflow.keys import load_secret_key

# One statement per hit: a window that has ended restarts at 1; otherwise the count goes up.
_HIT = """
INSERT INTO rate_limit_counters AS c (bucket, hits, window_end)
VALUES ($1, 1, now() + make_interval(secs => $2))
ON CONFLICT (bucket) DO UPDATE SET
    hits = CASE WHEN c.window_end <= now() THEN 1 ELSE c.hits + 1 END,
    window_end = CASE WHEN c.window_end <= now() THEN excluded.window_end ELSE c.window_end END
RETURNING hits, greatest(ceil(extract(epoch FROM c.window_end - now())), 1)::int AS retry_after
"""
# Ended windows are deleted now and then, not on every hit.
_SWEEP_EVERY = 600.0


class RateLimiter:
    def __init__(self) -> None:
        self._last_sweep = 0.0

    async def hit(self, request: Request, action: str, *, email: str | None = None) -> None:
        """Count one `action` (submit, verify) from this client, and for `email` if given; raise
        a 429 Problem when either is over its limit. The IP is counted first: a client over its
        limit does not use up the address's allowance."""
        state = request.app.state.dsr
        settings = state.settings
        secret = load_secret_key(settings)
        buckets = [("ip", request.client.host if request.client else "unknown")]
        if email is not None:
            buckets.append(("email", email.strip().lower()))
        pool = await state.db()
        for per, value in buckets:
            allowed, window = settings.rate(action, per)
            hits, retry_after = await pool.fetchrow(
                _HIT, keyed_hash(secret, "rate-limit", action, per, value), float(window))
            if hits > allowed:
                # The same words whichever limit it is: a refusal must not tell a stranger that
                # someone else has been using this address.
                raise Problem(429, "Too many requests",
                              f"too many attempts; try again in {retry_after} second(s)",
                              retry_after=retry_after)
        if time.monotonic() - self._last_sweep > _SWEEP_EVERY:
            self._last_sweep = time.monotonic()
            await pool.execute("DELETE FROM rate_limit_counters WHERE window_end < now()")


def limiter(request: Request) -> RateLimiter:
    return request.app.state.rate_limiter
