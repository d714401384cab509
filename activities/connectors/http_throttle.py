"""What a service's refusal says about waiting: Retry-After (or HubSpot's rate-limit headers) as
seconds, and whether a 403 or 429 names a rate limit or the day's quota."""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from activities.connectors.bounded_http import NotJson, json_document

# Delay-seconds are ASCII digits (str.isdigit also takes "²", which float() then refuses).
_DIGITS = re.compile(r"[0-9]+")
# The longest wait a service's answer obtains: its day's quota comes back within a day. A
# Retry-After of ten years held the task that long, with nothing to show for it until the
# deadline passed, and one of 10**20 seconds failed every attempt with an OverflowError.
RETRY_AFTER_MAX = 24 * 3600.0


def retry_after(response: httpx.Response, now: datetime) -> float | None:
    """Retry-After as seconds (RFC 9110: delay-seconds or an HTTP date), at most RETRY_AFTER_MAX.
    HubSpot sends none: its X-HubSpot-RateLimit-Remaining 0 says the window of
    X-HubSpot-RateLimit-Interval-Milliseconds is used up, so one window's wait."""
    value = response.headers.get("Retry-After")
    if not value:
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")
        if response.headers.get("X-HubSpot-RateLimit-Remaining") == "0" and _DIGITS.fullmatch(interval):
            return min(int(interval) / 1000, RETRY_AFTER_MAX)
        return None
    if _DIGITS.fullmatch(value.strip()):
        return min(float(value), RETRY_AFTER_MAX)
    try:
        return min(max(0.0, (parsedate_to_datetime(value) - now).total_seconds()), RETRY_AFTER_MAX)
    except (TypeError, ValueError):
        return None


def throttled(response: httpx.Response) -> str | None:
    """"rate" or "daily" when a 403 or 429 says a rate limit or the day's quota is used up:
    HubSpot's {errorType: RATE_LIMIT, policyName: DAILY | SECONDLY | ...}; Google's
    {error: {errors: [{reason: dailyLimitExceeded | rateLimitExceeded | ...}]}}, which Google's
    APIs send with a 403 as often as with a 429."""
    document = error_document(response)
    if not isinstance(document, dict):
        return None
    if document.get("errorType") == "RATE_LIMIT":
        return "daily" if document.get("policyName") == "DAILY" else "rate"
    error = document.get("error")
    errors = error.get("errors") if isinstance(error, dict) else None
    reasons = {e.get("reason") for e in errors if isinstance(e, dict)} if isinstance(errors, list) else set()
    if "dailyLimitExceeded" in reasons:
        return "daily"
    if reasons & {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}:
        return "rate"
    return None


def error_document(response: httpx.Response) -> Any:
    """An error answer's JSON document, or None: what it says is a hint, never required."""
    try:
        return json_document(response)
    except NotJson:
        return None
