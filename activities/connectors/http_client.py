"""One http system's exchanges: templates rendered in a sandbox, each request through the quota
ledger, retries that honour Retry-After, and errors that name the system, the step and the
status but never the subject (paths in messages are the configured templates, not the URLs).

- 429: wait Retry-After (or back off) and try again; a wait longer than the configured inline
  maximum ends the activity attempt with `next_retry_delay`, so the workflow waits instead;
- 5xx and transport errors: back off and try again, then let the activity retry;
- 401 with OAuth2: fetch a new token once and repeat the request;
- any other 4xx: PermanentConnectorError, which flags the task for staff;
- a redirect: not followed (the credentials would go with it), PermanentConnectorError;
- an answer past the client's cap (ANSWER_MIB), not JSON, nested too deep, without the records
  where the step says, or paging in a circle (http_answers.py): PermanentConnectorError; one
  trickled past the client's deadline: the activity retries, later.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
from jinja2 import StrictUndefined, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from temporalio.exceptions import ApplicationError

from activities.connectors.base import PermanentConnectorError
from activities.connectors.bounded_http import AnswerTooLarge, AnswerTooSlow, NotJson, json_document, what_failed
from activities.connectors.http_answers import (
    Circle,
    UnreadAnswer,
    cursor_value,
    dig,
    keyed,
    kind_of,
    more_pages,
    records_at,
    total_items,
)
from activities.connectors.http_auth import Credentials
from activities.connectors.http_quota import QuotaExhausted, QuotaLedger
from activities.connectors.http_run import Budget
from activities.connectors.http_throttle import error_document, retry_after, throttled
from policy.http_model import HttpConfig, Pagination, RequestSpec, Step

_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
# The longest answer read: far above any page these APIs answer (a Stripe page of 100 invoices is
# about a megabyte), and small enough that a page of tiny records decoded still fits in memory.
ANSWER_MIB = 8


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


def _path_value(value: Any) -> str:
    """A value as it goes into a URL path: an id, escaped whole, so that it can never change the
    path's shape. A value from the service's answers ("..": httpx resolves it, and the request
    goes to the segment above; an object; null, sent as "None") is refused, not sent."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"a value put into the URL path is {kind_of(value)}, not an id: not sent")
    text = str(value)
    if text in ("", ".", ".."):
        raise ValueError(f"a value put into the URL path is {text!r}, which would change the path: not sent")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("a value put into the URL path holds control characters: not sent")
    if "/" in text or "\\" in text:
        # Escaped, yet a server that decodes the path before routing it reads another path.
        raise ValueError("a value put into the URL path holds a slash, which a service may read as a path: not sent")
    return quote(text, safe="")


# In paths every value is URL-escaped: an e-mail or id can never change the path's shape.
_PATH = _environment(finalize=_path_value)


class HttpSystemUnavailable(ConnectionError):
    """5xx, 429 or a transport error that outlasted the inline retries: the activity retries."""


class TemplateError(PermanentConnectorError):
    pass


class HttpExchange:
    def __init__(self, system: str, config: HttpConfig, credentials: Credentials, http: httpx.AsyncClient,
                 ledger: QuotaLedger, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 settings_from: Collection[str] = ()) -> None:
        self.system = system
        # The environment variables the configuration's other values come from (`${VAR}`: base
        # URL, ids), named with the credentials' when the service refuses them (`_refused_words`).
        self.settings_from = sorted(settings_from)
        self.config = config
        self.credentials = credentials
        self.http = http
        self.ledger = ledger
        self.sleep = sleep
        self.base_url = config.base_url.rstrip("/")
        # Whether the last request's answer came after a try of it that the service may have
        # carried out (a 5xx, or a connection lost once the request was out): a `missing` answer
        # then may be that try's doing (http_steps.py counts it as the step's effect).
        self.unsure_before = False
        # The status the last request was refused with outright (a 4xx other than a throttle), no
        # try of it before having been carried out perhaps: the service made no change. Else None.
        self.refused: int | None = None
        # Requests handed to the HTTP client so far: a change stopped with this unmoved since its
        # journal's "sending" row sent nothing (http_steps.py).
        self.requests_started = 0

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

    def confirm(self, step: Step, status: int, document: Any, context: Mapping[str, Any], where: str) -> None:
        """The step's `confirm` over the answer, which must hold for its effect to count; a
        PermanentConnectorError when it does not (an answer lacking what it reads confirms nothing)."""
        if step.confirm is None or status in step.missing:
            return
        try:
            confirmed = self.truthy(step.confirm, {**context, "answer": document, "status": status}, where)
        except TemplateError:
            confirmed = False
        if not confirmed:
            raise PermanentConnectorError(
                f"system {self.system}: {self.config.service} answered HTTP {status} to {step.request.method} "
                f"{step.request.path} ({where}) without confirming it was done (confirm: {step.confirm}): "
                "not counted as done; check in the service")

    # -- exchanges -------------------------------------------------------------------------

    async def pages(self, step: Step, where: str, context: Mapping[str, Any],
                    budget: Budget) -> AsyncIterator[tuple[int, Any, list[dict[str, Any]]]]:
        """Each page of a step's response as (status, document, its records: those of a read
        step); a `missing` status yields once, with no document. Every answer counts against the
        action's `budget`; a page, cursor or next link met again ends the read with an error."""
        spec = step.request
        what = f"{spec.method} {spec.path} ({where})"
        query = self.render_value(spec.query, context, where)
        body = self.render_value(spec.body, context, where) if spec.body is not None else None
        url = self.base_url + "/" + self.render(spec.path, context, where, path=True).lstrip("/")
        paging: Pagination | None = step.paginate
        offset = int(query.get(paging.param, 0)) if paging and paging.style == "offset" and paging.param else 0
        circle = Circle()
        for _ in range(paging.max_pages if paging else 1):
            # A fresh `request_key` for each request (not for each retry of it): what an
            # Idempotency-Key header is made of (Stripe replays a key's first answer).
            extra = self.render_value(spec.headers, {**context, "request_key": str(uuid.uuid4())}, where)
            response = await self.send(spec, where, url, query, body, accept=step.missing, headers=extra)
            if (exceeded := budget.over(read=len(response.content))) is not None:
                raise PermanentConnectorError(
                    f"system {self.system}: {what} read {exceeded} from {self.config.service} in one action, "
                    "far more than any subject's records: stopped there")
            if response.status_code in step.missing:
                yield response.status_code, None, []
                return
            try:
                document = json_document(response)
                page = records_at(document, step.records) if step.records is not None else []
                if step.dataset and step.records is not None:
                    keyed(page, self.config.datasets[step.dataset].key, step.dataset)
                circle.page(page)
                following = self._following(paging, document, response, page, offset, circle) if paging else None
            except (NotJson, UnreadAnswer) as exc:
                raise PermanentConnectorError(
                    f"system {self.system}: {self.config.service}'s answer to {what} {exc}: not read") from None
            yield response.status_code, document, page
            if paging is None or following is None:
                return
            if paging.style == "link":
                url, query = self._next_link(str(following), url, where), {}
                continue
            if paging.style == "offset":
                offset = int(following)
            if paging.location == "body" and body is not None:
                body = {**body, paging.param: following}
            else:
                query = {**query, paging.param: following}
        raise PermanentConnectorError(f"system {self.system}: {self.config.service} answered {what} with more "
                                      f"than {paging.max_pages if paging else 1} pages (paginate.max_pages): "
                                      "not read further")

    def _following(self, paging: Pagination, document: Any, response: httpx.Response,
                   page: list[dict[str, Any]], offset: int, circle: Circle) -> Any:
        """Where the next page is (a link, an offset, a cursor), None after the last; UnreadAnswer
        when the answer says it in a way no page follows from, or leads back to a page read."""
        if paging.style == "link":
            link = dig(document, paging.next_path) if paging.next_path else self._link_header(response)
            following = cursor_value(link, paging.next_path or "Link")
        elif paging.style == "offset":
            total = total_items(dig(document, paging.total_path), paging.total_path or "")
            offset += len(page)
            following = None if not page or (total is not None and offset >= total) else offset
        else:
            if paging.more_path and not more_pages(dig(document, paging.more_path), paging.more_path):
                return None
            following = cursor_value(dig(document, paging.cursor_path), paging.cursor_path) if paging.cursor_path \
                else cursor_value(page[-1].get(paging.cursor_field or "") if page else None, paging.cursor_field or "")
        if following is not None and paging.style != "offset":
            circle.cursor(following)
        return following

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
        self.unsure_before, self.refused = False, None
        while True:
            attempt += 1
            day = await self.ledger.acquire()
            try:
                sent = {"Accept": "application/json", **self.config.headers, **own,
                        **(await self.credentials.headers())}
            except BaseException:
                await self.ledger.give_back(day)  # no request went for this share of the quota
                raise
            form: dict[str, str] | None = None
            json_body: Any = None
            if body is not None and self.config.body_format == "form":
                form = _form(body)
            elif body is not None:
                json_body = body
            try:
                # (httpx drops a URL's own query when given params, even empty ones: next-page links)
                self.requests_started += 1
                response = await self.http.request(spec.method, url, headers=sent,
                                                   params=_plain(query) if query else None, data=form, json=json_body)
            except AnswerTooLarge:
                # The same request brings the same answer: not fetched again.
                raise PermanentConnectorError(
                    f"system {self.system}: {self.config.service}'s answer to {what} was longer than "
                    f"{ANSWER_MIB} MiB, far more than a page of its API: not read") from None
            except httpx.TransportError as exc:
                if isinstance(exc, _NEVER_SENT):
                    await self.ledger.give_back(day)  # the service saw nothing, nor counted it
                # An answer sent too slowly to arrive whole by the deadline took minutes already:
                # the activity's retries, with their backoff, try again later.
                if attempt >= retry.attempts or isinstance(exc, AnswerTooSlow):
                    raise HttpSystemUnavailable(f"system {self.system}: {what} failed: {what_failed(exc)}") from None
                self.unsure_before |= not isinstance(exc, _NEVER_SENT)
                await self.sleep(retry.backoff_seconds * 2 ** (attempt - 1))
                continue
            code = response.status_code
            if response.is_success or code in accept:
                return response
            if response.is_redirect:
                raise PermanentConnectorError(
                    f"system {self.system}: {self.config.service} answered HTTP {code} to {what}, a redirect "
                    f"{self._redirect_target(response)}: not followed, since the credentials would go with it; "
                    "check base_url")
            if code == 401 and self.credentials.refreshable and not refreshed:
                refreshed = True  # an expired or revoked token: one new token, one more try
                self.credentials.invalidate()
                continue
            limit = throttled(response) if code in (403, 429) else None
            if limit == "daily":
                # Waiting minutes would not help: the day's quota is gone (another client of the
                # same account or project may have used it). The run waits for the next day.
                raise QuotaExhausted(self.ledger.bucket, self.config.limits.per_day or 0, self.ledger.next_day())
            if code == 429 or limit == "rate" or code >= 500 or code in retry.statuses:
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
                self.unsure_before |= code >= 500
                await self.sleep(wait if wait is not None else backoff)
                continue
            self.refused = None if self.unsure_before else code
            raise PermanentConnectorError(
                f"system {self.system}: {self.config.service} answered HTTP {code} to {what}"
                + self._error_code(response) + self._refused_words(code))

    def _redirect_target(self, response: httpx.Response) -> str:
        target = response.headers.get("Location", "")
        try:
            elsewhere = _origin(urljoin(str(response.url), target)) != _origin(self.base_url)
        except ValueError:
            elsewhere = True
        return "to another host" if elsewhere else "elsewhere on its host"

    def _refused_words(self, code: int) -> str:
        """What staff are to check: for a 401 or 403 (a key expired, revoked or rolled, a scope or
        role missing, another account or datacenter), the variables that hold the credentials and
        the settings. Before, the message named neither, and staff had to find which of the
        deployment's variables this system reads."""
        if code not in (401, 403):
            return ": the request was refused; check the system's configuration"
        credentials = ", ".join(f"{name} ({field})" for name, field in sorted(self.config.env_names().items()))
        settings = f" and the settings read from {', '.join(self.settings_from)}" if self.settings_from else ""
        return (": the credentials were refused or lack a permission the request needs: check "
                + (f"the credentials in {credentials}" if credentials else "its credentials") + settings)

    def _error_code(self, response: httpx.Response) -> str:
        if not self.config.error_code_path:
            return ""
        document = error_document(response)
        # Each path's code (several, comma-separated: Google's status says PERMISSION_DENIED both
        # for a property not granted and for the API not enabled, its reason tells them apart).
        # Only a short token-like code: a service's free-text message may quote the subject.
        codes = [str(code) for path in self.config.error_code_path.split(",")
                 if isinstance(code := dig(document, path.strip()), (str, int)) and _CODE.fullmatch(str(code))]
        return f" [{', '.join(codes)}]" if codes else ""


# Transport errors before the request left: the service cannot have carried it out.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


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
