"""One http system's exchanges: templates rendered in a sandbox, each request through the quota
ledger, retries that honour Retry-After, and errors that name the system, the step and the
status but never the subject (paths in messages are the configured templates, not the URLs).

- 429: wait Retry-After (or back off) and try again; a wait longer than the configured inline
  maximum ends the activity attempt with `next_retry_delay`, so the workflow waits instead;
- 5xx and transport errors: back off and try again, then let the activity retry;
- 401 with OAuth2: fetch a new token once and repeat the request;
- any other 4xx: PermanentConnectorError, which flags the task for staff.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
from jinja2 import StrictUndefined, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from temporalio.exceptions import ApplicationError

from activities.connectors.base import PermanentConnectorError
from activities.connectors.http_auth import Credentials
from activities.connectors.http_quota import QuotaExhausted, QuotaLedger
from policy.http_model import HttpConfig, Pagination, RequestSpec, Step

_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
# Delay-seconds are ASCII digits (str.isdigit also takes "²", which float() then refuses).
_DIGITS = re.compile(r"[0-9]+")
# The longest wait a service's answer obtains: its day's quota comes back within a day. A
# Retry-After of ten years held the task that long, with nothing to show for it until the
# deadline passed, and one of 10**20 seconds failed every attempt with an OverflowError.
RETRY_AFTER_MAX = 24 * 3600.0


def _md5(value: Any) -> str:
    return hashlib.md5(str(value).encode(), usedforsecurity=False).hexdigest()


def _sha256(value: Any) -> str:
    return hashlib.sha256(str(value).encode()).hexdigest()


def _environment(finalize: Callable[[Any], Any] | None = None) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, finalize=finalize)
    env.filters.update(md5=_md5, sha256=_sha256,
                       subscriber_hash=lambda v: _md5(str(v).strip().lower()))
    return env


_TEXT = _environment()
# In paths every value is URL-escaped: an e-mail or id can never change the path's shape.
_PATH = _environment(finalize=lambda v: quote(str(v), safe=""))


def dig(document: Any, path: str | None) -> Any:
    """The value at a dotted path ("paging.next.after"); "" is the document itself."""
    if path is None:
        return None
    value = document
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def records_at(document: Any, path: str) -> list[dict[str, Any]]:
    value = dig(document, path)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


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
    try:
        document = response.json()
    except ValueError:
        return None
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


class HttpSystemUnavailable(ConnectionError):
    """5xx, 429 or a transport error that outlasted the inline retries: the activity retries."""


class TemplateError(PermanentConnectorError):
    pass


class HttpExchange:
    def __init__(self, system: str, config: HttpConfig, credentials: Credentials, http: httpx.AsyncClient,
                 ledger: QuotaLedger, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.system = system
        self.config = config
        self.credentials = credentials
        self.http = http
        self.ledger = ledger
        self.sleep = sleep
        self.base_url = config.base_url.rstrip("/")

    # -- templates -------------------------------------------------------------------------

    def render(self, template: str, context: Mapping[str, Any], where: str, *, path: bool = False) -> str:
        try:
            return (_PATH if path else _TEXT).from_string(template).render(context)
        except (UndefinedError, SecurityError, TypeError, ValueError) as exc:
            raise TemplateError(f"system {self.system}: template in {where} failed: {exc}") from None

    def render_value(self, value: Any, context: Mapping[str, Any], where: str) -> Any:
        if isinstance(value, str):
            return self.render(value, context, where)
        if isinstance(value, dict):
            return {k: self.render_value(v, context, where) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render_value(v, context, where) for v in value]
        return value

    def truthy(self, template: str | None, context: Mapping[str, Any], where: str) -> bool:
        if template is None:
            return True
        return self.render(template, context, where).strip().lower() not in ("", "false", "0", "none", "no")

    # -- exchanges -------------------------------------------------------------------------

    async def pages(self, step: Step, where: str, context: Mapping[str, Any]) -> AsyncIterator[tuple[int, Any]]:
        """Each page of a step's response as (status, body); a `missing` status yields once."""
        spec = step.request
        query = self.render_value(spec.query, context, where)
        body = self.render_value(spec.body, context, where) if spec.body is not None else None
        url = self.base_url + "/" + self.render(spec.path, context, where, path=True).lstrip("/")
        paging: Pagination | None = step.paginate
        offset = int(query.get(paging.param, 0)) if paging and paging.style == "offset" and paging.param else 0
        for _ in range(paging.max_pages if paging else 1):
            # A fresh `request_key` for each request (not for each retry of it): what an
            # Idempotency-Key header is made of (Stripe replays a key's first answer).
            extra = self.render_value(spec.headers, {**context, "request_key": str(uuid.uuid4())}, where)
            response = await self.send(spec, where, url, query, body, accept=step.missing, headers=extra)
            if response.status_code in step.missing:
                yield response.status_code, None
                return
            document = response.json() if response.content else None
            yield response.status_code, document
            if paging is None:
                return
            page = records_at(document, step.records or "")
            if paging.style == "link":
                following = dig(document, paging.next_path) if paging.next_path else self._link_header(response)
                if not following:
                    return
                url, query = self._next_link(str(following), url, where), {}
                continue
            if paging.style == "offset":
                offset += len(page)
                total = dig(document, paging.total_path)
                if not page or (isinstance(total, int) and offset >= total):
                    return
                cursor: Any = offset
            else:
                if paging.more_path and not dig(document, paging.more_path):
                    return
                cursor = dig(document, paging.cursor_path) if paging.cursor_path else (
                    page[-1].get(paging.cursor_field or "") if page else None)
                if cursor in (None, ""):
                    return
            if paging.location == "body" and body is not None:
                body = {**body, paging.param: cursor}
            else:
                query = {**query, paging.param: cursor}
        raise PermanentConnectorError(f"system {self.system}: {where} returned more than "
                                      f"{paging.max_pages if paging else 1} pages")

    def _next_link(self, link: str, current: str, where: str) -> str:
        """The next page's URL from a link in the answer: absolute (HubSpot's answers), a path
        under the base URL, or relative to the page just read (HubSpot's documented `?after=...`,
        which names no path: appended to the base URL it would ask for the service's root)."""
        if link.startswith("/") and not link.startswith("//"):
            following = self.base_url + link
        else:
            following = urljoin(current, link)
        if _origin(following) != _origin(self.base_url):
            # The next link comes from the service's answer: following it elsewhere would hand
            # our credentials to whoever it names.
            raise PermanentConnectorError(
                f"system {self.system}: {where} pointed its next page at another host than "
                f"{self.config.service}'s configured one; not followed")
        return following

    @staticmethod
    def _link_header(response: httpx.Response) -> str | None:
        found = _LINK_NEXT.search(response.headers.get("Link", ""))
        return found.group(1) if found else None

    async def send(self, spec: RequestSpec, where: str, url: str, query: dict[str, Any],
                   body: Any, *, accept: Collection[int] = (), headers: Mapping[str, str] | None = None,
                   ) -> httpx.Response:
        """One request, with the retries described above. Returns 2xx or an `accept` status.
        `headers`: the step's headers as rendered (default: as written)."""
        own = dict(spec.headers if headers is None else headers)
        what = f"{spec.method} {spec.path} ({where})"
        retry = self.config.retry
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            await self.ledger.acquire()
            sent = {"Accept": "application/json", **self.config.headers, **own,
                    **(await self.credentials.headers())}
            form: dict[str, str] | None = None
            json_body: Any = None
            if body is not None and self.config.body_format == "form":
                form = _form(body)
            elif body is not None:
                json_body = body
            try:
                # (httpx drops a URL's own query when given params, even empty ones: next-page links)
                response = await self.http.request(spec.method, url, headers=sent,
                                                   params=_plain(query) if query else None, data=form, json=json_body)
            except httpx.TransportError as exc:
                if attempt >= retry.attempts:
                    raise HttpSystemUnavailable(f"system {self.system}: {what} failed: {type(exc).__name__}") from None
                await self.sleep(retry.backoff_seconds * 2 ** (attempt - 1))
                continue
            code = response.status_code
            if response.is_success or code in accept:
                return response
            if code == 401 and self.credentials.refreshable and not refreshed:
                refreshed = True  # an expired or revoked token: one new token, one more try
                self.credentials.invalidate()
                continue
            limit = throttled(response) if code in (403, 429) else None
            if limit == "daily":
                # Waiting minutes would not help: the day's quota is gone (another client of the
                # same account or project may have used it). The run waits for the next day.
                raise QuotaExhausted(self.ledger.bucket, self.config.limits.per_day or 0, self.ledger.next_day())
            if code == 429 or limit == "rate" or code >= 500:
                wait = retry_after(response, datetime.now(UTC)) if code < 500 else None
                backoff = retry.backoff_seconds * 2 ** (attempt - 1)
                if wait is not None and wait > retry.max_inline_wait_seconds:
                    raise ApplicationError(
                        f"system {self.system}: {self.config.service} answered HTTP {code} to {what}; "
                        f"retrying after {wait:.0f}s as it asked", type="HttpSystemThrottled",
                        next_retry_delay=timedelta(seconds=wait))
                if attempt >= retry.attempts:
                    raise HttpSystemUnavailable(
                        f"system {self.system}: {self.config.service} answered HTTP {code} to {what} "
                        f"{attempt} times")
                await self.sleep(wait if wait is not None else backoff)
                continue
            raise PermanentConnectorError(
                f"system {self.system}: {self.config.service} answered HTTP {code} to {what}"
                + self._error_code(response) + _hint(code))

    def _error_code(self, response: httpx.Response) -> str:
        if not self.config.error_code_path:
            return ""
        try:
            code = dig(response.json(), self.config.error_code_path)
        except ValueError:
            return ""
        # Only a short token-like code: a service's free-text message may quote the subject.
        return f" [{code}]" if isinstance(code, (str, int)) and _CODE.fullmatch(str(code)) else ""


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _hint(code: int) -> str:
    if code in (401, 403):
        return ": the credentials were refused or lack a permission the request needs"
    return ": the request was refused; check the system's configuration"


def _plain(query: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in query.items() if v is not None}


def _form(body: Any, prefix: str = "") -> dict[str, str]:
    """Nested data as form fields the way Stripe reads them: metadata[key]=value, items[0]=..."""
    out: dict[str, str] = {}
    items = body.items() if isinstance(body, dict) else enumerate(body) if isinstance(body, list) else None
    if items is None:
        return {prefix: "" if body is None else (str(body).lower() if isinstance(body, bool) else str(body))}
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        out.update(_form(value, name))
    return out
