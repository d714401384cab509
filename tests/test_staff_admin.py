"""Compliance and admin endpoints: a request's audit events with their hashes, staff tokens over
REST and the CLI (revocation takes effect at once, tokens are never shown again), and the Temporal
UI's codec endpoint open to staff only."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from dsrflow.domain.audit import append_event, verify_rows
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from tests.support import api_client, assert_problem, staff_headers

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def http(settings):
    # These endpoints read Postgres only: no Temporal client.
    async with api_client(settings, None, "unused") as client:
        yield client


async def stored_request(pool, events: int) -> str:
    """A request as intake stores it, then `events` more events in its trail."""
    row, _ = await create_request(
        pool, NewRequest.model_validate({"type": "erasure", "subject": {"email": f"ev.{uuid.uuid4().hex[:8]}@example.com"}}),
        loaded_policy=load_policy(), secret=b"s" * 32, actor="agent:tests", idempotency_key=None)
    request_id = str(row["id"])
    async with pool.acquire() as conn:
        for n in range(events):
            await append_event(conn, event_key=f"{request_id}:test:{n}", request_id=request_id,
                               event_type="test.step", actor="workflow", data={"n": n})
    return request_id


async def test_events_come_in_chain_order_with_verifiable_hashes(http, pool):
    request_id = await stored_request(pool, events=4)
    headers = await staff_headers(pool, "compliance")

    pages, cursor = [], None
    while True:
        r = await http.get(f"/v1/requests/{request_id}/events", headers=headers,
                           params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        pages.append(r.json()["events"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break

    events = [e for page in pages for e in page]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [e["event_type"] for e in events] == ["request.created"] + ["test.step"] * 4
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    for event in events:  # anyone holding the response can recompute each hash
        row = {**event, "request_id": request_id, "occurred_at": datetime.fromisoformat(event["occurred_at"])}
        assert verify_rows([row], start_hash=event["prev_hash"]).ok, event


async def test_events_of_an_unknown_request_or_with_a_bad_cursor(http, pool):
    headers = await staff_headers(pool, "compliance")
    assert_problem(await http.get(f"/v1/requests/{uuid.uuid4()}/events", headers=headers), 404)
    request_id = await stored_request(pool, events=0)
    bad = await http.get(f"/v1/requests/{request_id}/events", headers=headers, params={"cursor": "x"})
    assert [e["field"] for e in assert_problem(bad, 422)["errors"]] == ["cursor"]


async def test_admin_creates_lists_and_revokes_tokens(http, pool):
    admin = await staff_headers(pool, "admin")

    created = await http.post("/v1/tokens", headers=admin, json={"role": "agent", "label": "desk 3"})
    assert created.status_code == 201, created.text
    token, token_id = created.json()["token"], created.json()["id"]
    agent = {"Authorization": f"Bearer {token}"}
    assert (await http.get("/v1/requests", headers=agent, params={"limit": 1})).status_code == 200

    listed = (await http.get("/v1/tokens", headers=admin)).json()["tokens"]
    mine = [t for t in listed if t["id"] == token_id]
    assert mine == [{**mine[0], "role": "agent", "label": "desk 3", "revoked_at": None}]
    assert token not in str(listed) and "token" not in mine[0]

    revoked = await http.delete(f"/v1/tokens/{token_id}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert_problem(await http.get("/v1/requests", headers=agent), 401)
    assert token_id not in {t["id"] for t in (await http.get("/v1/tokens", headers=admin)).json()["tokens"]}
    assert token_id in {t["id"] for t in (await http.get("/v1/tokens", headers=admin,
                                                          params={"include_revoked": "true"})).json()["tokens"]}
    kinds = await pool.fetch("SELECT event_type FROM audit_events WHERE data->>'token_id' = $1 ORDER BY seq", token_id)
    assert [k["event_type"] for k in kinds] == ["staff.token_created", "staff.token_revoked"]


@pytest.mark.parametrize(("body", "field"), [({"role": "root"}, "role"), ({"role": "agent", "label": ""}, "label"),
                                             ({"role": "agent", "scopes": ["all"]}, "scopes"),
                                             ({"role": "agent", "label": "desk\u0000"}, "label")])
async def test_bad_token_request_names_the_field(http, pool, body, field):
    r = await http.post("/v1/tokens", headers=await staff_headers(pool, "admin"), json=body)
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == [field]


async def test_text_postgres_cannot_store_is_422_not_500(http, pool):
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "erasure", "subject": {"email": "nul@example.com", "name": "Ada\u0000"}})
    # Refused at intake as a control character in a one-line field, naming it (before the
    # database could refuse the NUL).
    assert "subject.name" in assert_problem(r, 422)["detail"]
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = 'nul@example.com'") == 0


async def test_revoking_an_unknown_token_is_404(http, pool):
    admin = await staff_headers(pool, "admin")
    for token_id in (str(uuid.uuid4()), "not-an-id"):
        assert_problem(await http.delete(f"/v1/tokens/{token_id}", headers=admin), 404)


async def dsrflow_cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DSRFLOW_DATABASE_URL": settings.database_url, "DSRFLOW_HOME": str(settings.home)}
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "cli.main", *args],
                                   env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


async def test_cli_lists_and_revokes_tokens_without_showing_them(http, settings, pool):
    label = f"laptop-{uuid.uuid4().hex[:6]}"
    made = await dsrflow_cli(settings, "token", "create", "--role", "compliance", "--label", label)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert (await http.get("/v1/requests", headers=headers, params={"limit": 1})).status_code == 200

    listed = await dsrflow_cli(settings, "token", "list")
    line = next(li for li in listed.stdout.splitlines() if li.endswith(label))
    token_id, role = line.split()[:2]
    assert role == "compliance" and token not in listed.stdout

    revoked = await dsrflow_cli(settings, "token", "revoke", token_id)
    assert revoked.returncode == 0 and revoked.stdout.startswith(f"revoked {token_id}"), revoked.stderr
    assert_problem(await http.get("/v1/requests", headers=headers), 401)
    assert label not in (await dsrflow_cli(settings, "token", "list")).stdout
    assert label in (await dsrflow_cli(settings, "token", "list", "--all")).stdout


async def test_cli_revoke_of_an_unknown_id_is_one_line_and_exit_2(settings):
    done = await dsrflow_cli(settings, "token", "revoke", str(uuid.uuid4()))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: token-id: no staff token")


PLAIN = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                       "data": base64.b64encode(b'"hello"').decode()}]}
UI_ORIGIN = "http://127.0.0.1:8233"


async def test_codec_is_for_staff_only(http, pool):
    assert_problem(await http.post("/codec/encode", json=PLAIN), 401)
    assert_problem(await http.post("/codec/decode", json=PLAIN,
                                   headers={"Authorization": "Bearer dsr_not-a-token-we-issued"}), 401)
    headers = await staff_headers(pool, "compliance")
    encoded = await http.post("/codec/encode", json=PLAIN, headers=headers)
    assert encoded.status_code == 200, encoded.text
    assert (await http.post("/codec/decode", json=encoded.json(), headers=headers)).json() == PLAIN
    # A decoded history is the audit timeline told another way: not an agent's to read.
    assert_problem(await http.post("/codec/decode", json=encoded.json(),
                                   headers=await staff_headers(pool, "agent")), 403)


async def test_temporal_ui_may_call_the_codec_with_the_console_cookie(http, pool):
    """What the UI does with "include cross-origin credentials": a preflight, then a POST that
    carries the session cookie and no CSRF token."""
    preflight = await http.options("/codec/decode", headers={
        "Origin": UI_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == UI_ORIGIN
    assert preflight.headers["access-control-allow-credentials"] == "true"

    token = (await staff_headers(pool, "compliance"))["Authorization"].removeprefix("Bearer ")
    page = await http.get("/console/sign-in")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    assert (await http.post("/console/sign-in", data={"token": token, "csrf_token": csrf})).status_code == 303

    decoded = await http.post("/codec/decode", json=PLAIN, headers={"Origin": UI_ORIGIN, "X-Namespace": "default"})
    assert decoded.status_code == 200, decoded.text
    assert decoded.headers["access-control-allow-origin"] == UI_ORIGIN


async def test_ui_origin_cannot_read_other_endpoints(http, pool):
    r = await http.get("/v1/requests", headers={"Origin": UI_ORIGIN, **await staff_headers(pool, "agent")})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
