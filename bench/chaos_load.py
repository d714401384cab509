"""What runs against the stack during a chaos pass: staff opening erasures at a steady pace, a
client polling the API, processors confirming the e-mails they receive, and the wait until every
request has finished. Every API answer is logged with its time, so each fault's window can be
judged afterwards."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import httpx

from bench.chaos_stack import ChaosStack

CALL_TIMEOUT = 15.0  # an API call without an answer by then counts as unanswered
TERMINAL = ("completed", "denied", "cancelled", "closed_unverified")
# What PostgreSQL stopping under a connection looks like to asyncpg.
DATABASE_DOWN = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError,
                 asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError)
_CONFIRM_PATH = re.compile(r"/v1/callbacks/manual/([0-9a-f]{16,})")


@dataclass
class Answer:
    at: float  # time.time() when the answer (or the failure to get one) came
    call: str
    status: int | None  # None: no answer (connection refused, reset, timed out)


@dataclass
class OpenedRequest:
    email: str
    first_attempt: float
    request_id: str | None = None
    attempts: int = 0
    status: str | None = None
    closed_at: float | None = None


@dataclass
class Workload:
    stack: ChaosStack
    emails: list[str]
    tag: str  # keeps the Idempotency-Keys of the two passes apart
    give_up_after: float  # seconds a request may take to be opened, retries included
    answers: list[Answer] = field(default_factory=list)
    opened: list[OpenedRequest] = field(default_factory=list)
    confirmed: set[str] = field(default_factory=set)
    _seen_mail: set[str] = field(default_factory=set)
    _tokens: set[str] = field(default_factory=set)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.stack.api_url, timeout=CALL_TIMEOUT,
                                 headers={"Authorization": f"Bearer {self.stack.token}"})

    async def _call(self, name: str, send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response | None:
        try:
            response = await send()
        except httpx.HTTPError:
            self.answers.append(Answer(time.time(), name, None))
            return None
        self.answers.append(Answer(time.time(), name, response.status_code))
        return response

    # -- staff opening requests ------------------------------------------------------------------

    async def open_all(self, seconds: float) -> None:
        """Open one erasure per address, evenly over `seconds`. A request that gets no 201/200
        is retried with the same Idempotency-Key, as a client should, until `give_up_after`."""
        start = time.monotonic()
        async with self.client() as http:
            async def one(index: int, address: str) -> None:
                await asyncio.sleep(max(0.0, start + index * seconds / len(self.emails) - time.monotonic()))
                request = OpenedRequest(address, time.time())
                self.opened.append(request)
                body = {"type": "erasure", "identity_attested": True, "subject": {"email": address}}
                headers = {"Idempotency-Key": f"chaos-{self.tag}-{index}"}
                give_up = time.monotonic() + self.give_up_after
                while time.monotonic() < give_up:
                    request.attempts += 1
                    response = await self._call("POST /v1/requests",
                                                lambda: http.post("/v1/requests", json=body, headers=headers))
                    if response is not None and response.status_code in (200, 201):
                        request.request_id = response.json()["id"]
                        return
                    await asyncio.sleep(1.0)

            await asyncio.gather(*(one(i, a) for i, a in enumerate(self.emails)))

    # -- a client watching the queue -------------------------------------------------------------

    async def poll_api(self, stopping: asyncio.Event) -> None:
        async with self.client() as http:
            while not stopping.is_set():
                await self._call("GET /v1/requests", lambda: http.get("/v1/requests", params={"limit": 20}))
                await self._call("GET /healthz", lambda: http.get("/healthz"))
                await _pause(stopping, 0.5)

    # -- processors reached by e-mail --------------------------------------------------------------

    def _new_confirmation_tokens(self) -> None:
        for path in sorted(self.stack.mail.glob("*.eml")):
            if path.name in self._seen_mail:
                continue
            self._seen_mail.add(path.name)
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["X-DSR-Purpose"] != "processor_request":
                continue
            body = message.get_body(("plain",))
            found = _CONFIRM_PATH.search(body.get_content() if body else "")
            if found is None:
                raise RuntimeError(f"{path}: a processor request without a confirmation link")
            self._tokens.add(found.group(1))

    async def confirm_processors(self, stopping: asyncio.Event) -> None:
        """Each processor asked by e-mail follows the link in it and confirms (the POST its page's
        form makes); an answer other than 200 is tried again on the next round."""
        async with self.client() as http:
            while not stopping.is_set():
                self._new_confirmation_tokens()
                for token in sorted(self._tokens - self.confirmed):
                    response = await self._call(
                        "POST /v1/callbacks/manual/{token}",
                        lambda token=token: http.post(f"/v1/callbacks/manual/{token}", data={"note": ""}))
                    if response is not None and response.status_code == 200:
                        self.confirmed.add(token)
                await _pause(stopping, 0.5)

    # -- until every request has finished ----------------------------------------------------------

    async def refresh(self) -> bool:
        """Read each opened request's status from the database; True once all have finished."""
        ids = {r.request_id: r for r in self.opened if r.request_id}
        try:
            async with self.stack.connection() as conn:
                rows = await conn.fetch(
                    "SELECT id::text, status, extract(epoch FROM closed_at) AS closed FROM dsr_requests "
                    "WHERE id = ANY($1::uuid[])", list(ids))
        except DATABASE_DOWN:  # PostgreSQL is being restarted: ask again next round
            return False
        for row in rows:
            request = ids[row["id"]]
            request.status = row["status"]
            request.closed_at = float(row["closed"]) if row["closed"] is not None else None
        return len(ids) == len(self.opened) and all(r.status in TERMINAL for r in self.opened)

    async def wait_drained(self, timeout: float) -> bool:
        # A quarter of a second between looks (one query over the pass's ids): the figures read
        # closed_at, not when this saw it, so a longer pause only made each pass end later (about
        # half of it a pass: a second of each `--smoke` run's two passes, which `make test` runs).
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.refresh():
                return True
            await asyncio.sleep(0.25)
        return await self.refresh()


async def _pause(stopping: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        pass
