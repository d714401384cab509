"""Helpers shared by the tests: an API client on the real app, staff tokens, the mailbox."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import re
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.service import RPCError

from activities.connectors.tls import tls_context
from api.auth import create_token
from devstack.smtp_sink import MailSink, request_mail
from dsrflow.crypto.hashing import subject_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.domain.references import short_reference
from dsrflow.settings import Settings
from dsrflow.stores.holds_store import place_hold
from dsrflow.stores.requests_store import create_request
from policy.model import DEFAULT_POLICY
from schemas.requests import NewRequest
from tests.apps import lent_app
from tests.policy_once import policy_at, policy_of
from tests.pools import fetch_rows as fetch_rows  # here too, where most tests import it from
from tests.pools import session_pool_on
from workers.schedules import SCHEDULE_IDS

# The address dsrflow sends from under the default policy: mail from it that carries one of our
# Message-IDs is our own, and is not filed (activities/mailbox_intake.py `_ours`).
OUR_SENDER = policy_at(DEFAULT_POLICY).policy.controller.sender_email


@contextlib.asynccontextmanager
async def api_client(settings: Settings, client: Client, task_queue: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real FastAPI app in-process, talking to the given Temporal client and task queue (and
    to the database through the session's pool when it is the settings' database)."""
    async with lent_app(settings.model_copy(update={"task_queue": task_queue}), temporal_client=client,
                        policy=policy_of(settings), pool=session_pool_on(settings.effective_database_url)) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
            yield http


# uvicorn closes a connection left idle for 5 s (its keep-alive timeout). A request sent on one
# just as it closes gets no answer, only a ReadError (seen in CI, under load), so a client of a live
# server drops idle connections after 2 s and opens a new one.
_BEFORE_THE_SERVER_CLOSES = httpx.Limits(keepalive_expiry=2)


def poll_pause(waited: float) -> float:
    """How long a test's poll sleeps after `waited` seconds of waiting: a twentieth of a second at
    first, when most waits end, then longer, up to half a second. Each poll of a request's view
    is a query through the API, the engine and the worker: polling a worker killed mid-step ten
    times a second for the 4-15 s its timeouts take cost more CPU than the test's own work."""
    return 0.05 if waited < 1 else 0.1 if waited < 3 else 0.25 if waited < 8 else 0.5


def live_client(base_url: str, **options: Any) -> httpx.AsyncClient:
    """An HTTP client of a server on a loopback port (httpx.AsyncClient's options), with the
    process's one TLS context, as the connectors' (httpx would load the CA bundle for each client)."""
    return httpx.AsyncClient(base_url=base_url, limits=_BEFORE_THE_SERVER_CLOSES, verify=tls_context(), **options)


def unique_email(tag: str) -> str:
    return f"{tag}.{uuid.uuid4().hex[:10]}@example.com"


@contextlib.asynccontextmanager
async def served(settings: Settings, pool: asyncpg.Pool, client: Client, task_queue: str) -> AsyncIterator[httpx.AsyncClient]:
    """A worker on `task_queue` and an API client on the real app, both with these settings."""
    from workers.dsr_worker import build_worker

    async with build_worker(client, settings, pool, task_queue=task_queue):
        async with api_client(settings, client, task_queue) as http:
            yield http


async def staff_headers(pool: asyncpg.Pool, role: str = "compliance") -> dict[str, str]:
    return {"Authorization": f"Bearer {await create_token(pool, role, 'tests')}"}


def letters_for(sink: MailSink, request_id: str, purpose: str | None = None) -> list[EmailMessage]:
    return [m for m in request_mail(sink.directory, request_id) if purpose is None or m["X-DSR-Purpose"] == purpose]


async def eventually(check: Callable[[], Any], timeout: float = 60) -> None:
    """Wait until `await check()` is true, failing with its name after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"{check.__name__} still false after {timeout}s")
        await asyncio.sleep(0.2)


async def live_view(http: httpx.AsyncClient, headers: dict[str, str], request_id: str,
                    until: Callable[[dict[str, Any]], bool] = lambda view: True, timeout: float = 30) -> dict[str, Any]:
    """GET /v1/requests/{id} once its workflow answered (the live fields, `trouble` among them, are
    in the view: the API waits 2 s for the query, which a loaded machine can miss) and `until(view)`
    holds; fails naming the last status after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        view = (await http.get(f"/v1/requests/{request_id}", headers=headers)).json()
        if "trouble" in view and until(view):
            return view
        assert loop.time() < deadline, f"request {request_id}: status stayed {view.get('status')}"
        await asyncio.sleep(poll_pause(loop.time() + timeout - deadline))


async def wait_for_letter(sink: MailSink, request_id: str, purpose: str, timeout: float = 30) -> EmailMessage:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = letters_for(sink, request_id, purpose)
        if found:
            return found[-1]
        await asyncio.sleep(poll_pause(loop.time() + timeout - deadline))
    raise AssertionError(f"no {purpose} letter for {request_id} within {timeout}s")


async def wait_for_due_date(pool: asyncpg.Pool, request_id: str, timeout: float = 30) -> date:
    """The request's current due date, once its workflow has computed it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        due = await pool.fetchval("SELECT current_due_date FROM dsr_requests WHERE id = $1", request_id)
        if due:
            return due
        await asyncio.sleep(0.05)
    raise AssertionError(f"no due date for {request_id} within {timeout}s")


def controller_today(settings: Settings) -> date:
    """Today in the controller's timezone, the day the product judges due dates against (it is
    tomorrow already in Brussels late in the UTC evening)."""
    return datetime.now(ZoneInfo(policy_of(settings).policy.defaults.timezone)).date()


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


async def attested_request(http: httpx.AsyncClient, pool: asyncpg.Pool, type_: str,
                           email: str = "ada@example.com") -> str:
    """A request an agent opens over the API, the subject's identity attested: its id."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                        json={"type": type_, "subject": {"email": email}, "identity_attested": True})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def stored_request(pool: asyncpg.Pool, settings: Settings, label: str, type_: str = "access",
                         regime: str = "gdpr", email: str | None = None,
                         corrections: dict[str, str] | None = None, **details: Any) -> str:
    """A request stored as intake stores it (identity attested, no workflow started), with the
    dates registering it would set, which its letters need: its id. A rectification needs its
    `corrections`, a restriction its `restriction_grounds`, an objection its `objection_scope`."""
    loaded = policy_of(settings)
    row, _ = await create_request(pool, NewRequest(type=type_, regime=regime,
                                                   subject={"email": email or unique_email(label)},
                                                   identity_attested=True, corrections=corrections, **details),
                                  loaded_policy=loaded, secret=load_secret_key(settings),
                                  actor="test", idempotency_key=None)
    # 30 days from the controller's today, as alerts count their days left: the database's
    # `current_date` is UTC's, a day behind Brussels' from 23:00 UTC.
    await pool.execute("UPDATE dsr_requests SET due_date = (now() AT TIME ZONE $2)::date + 30, "
                       "current_due_date = (now() AT TIME ZONE $2)::date + 30 WHERE id = $1",
                       row["id"], loaded.policy.defaults.timezone)
    return str(row["id"])


def comparable_letter(sink: MailSink, request_id: str, purpose: str = "response") -> str:
    """A request's one letter of `purpose`, as text that two runs of the same request on stacks of
    their own share: its id and reference, its own API's address, its package's token and the
    time of day its link expires left out."""
    (message,) = letters_for(sink, request_id, purpose)
    text = text_of(message).replace(request_id, "<id>").replace(short_reference(request_id), "<id>")
    text = re.sub(r"/packages/[A-Za-z0-9_-]+", "/packages/<token>", text)
    # The time of day before its zone: "00:30 CET (UTC+1)", "00:30 GMT", "00:30 UTC+3" (dsrflow/i18n
    # long_datetime).
    text = re.sub(r"\b\d{2}:\d{2}(?= [A-Z]{2,5}\b)", "<time>", text)
    return re.sub(r"http://127\.0\.0\.1:\d+", "<api>", text)


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


async def console_sign_in(http: httpx.AsyncClient, pool: asyncpg.Pool, role: str) -> str:
    """Sign this client in to the console with a new `role` token (ending any session it had);
    returns its forms' CSRF token."""
    return await console_sign_in_with(http, await create_token(pool, role, "console tests"))


async def console_sign_in_with(http: httpx.AsyncClient, token: str, page: str = "/console/") -> str:
    """Sign this client in to the console with `token` (ending any session it had); returns the
    CSRF token of the forms on `page`."""
    http.cookies.clear()
    form = await http.get("/console/sign-in")
    answer = await http.post("/console/sign-in",
                             data={"token": token, "csrf_token": CSRF_FIELD.search(form.text).group(1)})
    assert answer.status_code == 303, answer.text
    shown = await http.get(page)
    assert shown.status_code == 200, shown.text
    return CSRF_FIELD.search(shown.text).group(1)


async def console_new_request(http: httpx.AsyncClient, pool: asyncpg.Pool, role: str, **fields: str) -> httpx.Response:
    """The console's new-request form sent by a member of staff with `role` (signed in anew), its
    fields `fields` (by e-mail unless `channel` says otherwise), as their browser sends it."""
    csrf = await console_sign_in(http, pool, role)
    form = await http.get("/console/requests/new")
    submission = re.search(r'name="submission" value="([^"]+)"', form.text).group(1)
    return await http.post("/console/requests", data={"csrf_token": csrf, "submission": submission,
                                                      "channel": "email", **fields})


def verification_code(message: EmailMessage) -> str:
    return re.search(r"\b(\d{6})\b", text_of(message)).group(1)


def verification_link(message: EmailMessage) -> str:
    return re.search(r"(https?://\S+/portal/requests/\S+/verify\?token=[0-9a-f]{64})", text_of(message)).group(1)


PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict:
    """The response is an RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers["content-type"]
    body = response.json()
    assert body["status"] == status
    return body


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a dsrflow process (`dsrflow worker`, a CLI command) these
    settings: each set field under its variable's name."""
    env: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        alias = field.validation_alias
        if value is None or alias is None:
            continue
        variable = alias.choices[0]  # type: ignore[union-attr]
        if isinstance(value, bool):
            env[variable] = "true" if value else "false"
        elif isinstance(value, list):
            env[variable] = json.dumps(value)
        else:
            env[variable] = str(value)
    return env


def read_spool(spool) -> tuple[list, list[list[str]]]:
    """A package spool (activities/packages.py) as the subject reads its two files from the zip:
    the parsed JSON and the parsed CSV rows. Closes the spool."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        spool.write_into(archive, "x.json", "x.csv")
    spool.close()
    archive = zipfile.ZipFile(buffer)
    rows = list(csv.reader(io.StringIO(archive.read("x.csv").decode("utf-8"), newline="")))
    return json.loads(archive.read("x.json")), rows


async def place_claims_hold(pool: asyncpg.Pool, settings: Settings, email: str, systems: list[str],
                            categories: list[str] | None = None) -> dict:
    """Compliance's Art. 17(3)(e) legal-claims hold on a subject's records in `systems` (of
    `categories` only, where given)."""
    async with pool.acquire() as conn:
        hold, _ = await place_hold(conn, secret=load_secret_key(settings), email=email,
                                   customer_id=None, systems=systems, categories=categories,
                                   basis="Art. 17(3)(e) GDPR", reason="Dispute over a support contract, claim 2026/17",
                                   review_date=date.today() + timedelta(days=90), actor="compliance:test")
        return hold


async def kept_whole_under(pool: asyncpg.Pool, settings: Settings, request_id: str, email: str, system: str,
                           hold: dict) -> dict:
    """What an erasure leaves of `system` under a legal-claims `hold` (place_claims_hold) on all its
    data: its deferred erasure's row, and the kept record its task carries (returned)."""
    await pool.execute(
        """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                          hold_ref, policy_version)
           SELECT id, $2, $3, 'all', 'all', 'legal_claims', $4, policy_version FROM dsr_requests WHERE id = $1""",
        uuid.UUID(request_id), subject_hash(load_secret_key(settings), email), system, str(hold["id"]))
    return {"system": system, "dataset": "all", "records": 1, "hold_kind": "legal_claims", "hold_ref": str(hold["id"]),
            "basis": "Art. 17(3)(e) GDPR", "law": "a legal claim (establishment, exercise or defence of legal claims)",
            "until": hold["review_date"].isoformat()}


async def answered_in_part(pool: asyncpg.Pool, request_id: str) -> None:
    """The response letter on record as sent, a refusal in part (what a hold kept)."""
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{request_id}:response", request_id=request_id, event_type="letter.sent",
                           actor="workflow", data={"purpose": "response", "refusal": True, "to_staff": False})


async def delete_schedules(client: Client) -> None:
    """Remove the schedules a worker makes (workers/schedules.py): they are shared by the whole
    Temporal server, and a later test expects to create them for its own task queue."""
    for schedule_id in SCHEDULE_IDS:
        with contextlib.suppress(RPCError):
            await client.get_schedule_handle(schedule_id).delete()


def english_only(content: dict[str, Any]) -> dict[str, Any]:
    """A test policy that adds systems of its own writes in English only: the shipped translation
    files cover the shipped systems' texts, not the test's (a new system's label would be missing
    in each, and the policy would not load)."""
    content["languages"] = {"supported": ["en"], "default": "en", "staff": "en"}
    content.pop("translations", None)
    return content


async def task_result(http: httpx.AsyncClient, pool: asyncpg.Pool, rid: str, system: str,
                      until: Callable[[dict], bool]) -> dict:
    """The request's result for `system` over the API, once `until` holds for it."""
    headers = await staff_headers(pool, "agent")
    results: dict[str, dict] = {}
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() < started + 60:
        # Without `results` while no worker answers its workflow (a worker killed, not yet back).
        view = (await http.get(f"/v1/requests/{rid}", headers=headers)).json()
        results = {r["system"]: r for r in view.get("results", [])}
        if system in results and until(results[system]):
            return results[system]
        await asyncio.sleep(poll_pause(loop.time() - started))
    raise AssertionError(f"the {system} task of {rid} never got there: {results.get(system)}")


async def staff_task_answer(http: httpx.AsyncClient, request_id: str, answer: str, body: dict[str, Any],
                            headers: dict[str, str]) -> httpx.Response:
    """Compliance's `retry-task` or `resolve-task` (`answer`), once the workflow has taken the
    task's failure in: the task's row says needs_attention a moment before, and meanwhile the
    workflow refuses either as the task being pending (409), as it tells the caller."""
    for _ in range(100):
        response = await http.post(f"/v1/requests/{request_id}/{answer}", headers=headers, json=body)
        if response.status_code != 409 or "is pending" not in response.text:
            return response
        await asyncio.sleep(0.1)
    return response


async def staff_retry(http: httpx.AsyncClient, request_id: str, system: str, headers: dict[str, str]) -> httpx.Response:
    return await staff_task_answer(http, request_id, "retry-task", {"system": system}, headers)


async def refused_erasure(http: httpx.AsyncClient, pool: asyncpg.Pool, sink: MailSink, email: str, regime: str,
                          country: str | None = None) -> tuple[str, EmailMessage]:
    """An erasure under `regime` that compliance denied: its id, and the denial letter sent. Under
    a law that grants an appeal (VCDPA) or a complaint to us (UK GDPR), one its subject may appeal."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "erasure", "regime": regime, "subject": {"email": email}, **({"country": country} if country else {})})
    assert r.status_code == 201, r.text
    refused = r.json()["id"]
    await wait_for_letter(sink, refused, "verification")
    r = await http.post(f"/v1/requests/{refused}/deny", headers=await staff_headers(pool, "compliance"), json={
        "reason_code": "other", "explanation": "The records are needed to defend a pending claim."})
    assert r.status_code == 200, r.text
    return refused, await wait_for_letter(sink, refused, "denial")
