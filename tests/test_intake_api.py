"""Intake through the REST API: invalid input is refused field by field and stores nothing,
repeats are idempotent, and staff endpoints demand a valid token with the right role."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from dsrflow.crypto.hashing import token_hash
from dsrflow.domain.request_start import start_request_workflow
from policy.model import load_policy
from tests.support import letters_for, staff_headers, unique_email, wait_for_letter

PROBLEM = "application/problem+json"


async def count_requests(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM dsr_requests")


async def count_for(pool, email: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email)


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers["content-type"]
    body = response.json()
    assert body["status"] == status
    return body


def _future() -> str:
    return (datetime.now(UTC) + timedelta(days=2)).isoformat()


INVALID_STAFF_REQUESTS = [
    pytest.param({"received_at": _future()}, "received_at", id="future-received_at"),
    pytest.param({"received_at": "2026-01-31T10:00:00"}, "received_at", id="naive-received_at"),
    pytest.param({"regime": "martian_law"}, "regime", id="unknown-regime"),
    pytest.param({"type": "rectification"}, "corrections", id="rectification-without-corrections"),
    pytest.param({"type": "objection"}, "objection_scope", id="objection-without-scope"),
    pytest.param({"subject": {"email": "not-an-address"}}, "subject.email", id="malformed-subject-email"),
    pytest.param({"favourite_colour": "blue"}, "favourite_colour", id="unknown-extra-field"),
    pytest.param({"language": "it"}, "language", id="unknown-language"),
    pytest.param({"language": "NL"}, "language", id="language-not-a-code"),
]


@pytest.mark.parametrize(("change", "field"), INVALID_STAFF_REQUESTS)
async def test_invalid_staff_request_is_refused_per_field_and_not_stored(http, pool, change, field):
    headers = await staff_headers(pool, "agent")
    body = {"type": "erasure", "subject": {"email": unique_email("invalid")}, **change}
    before = await count_requests(pool)

    r = await http.post("/v1/requests", headers=headers, json=body)

    problem = assert_problem(r, 422)
    fields = [e["field"] for e in problem["errors"]]
    assert fields == [field], problem
    assert all(e["message"] for e in problem["errors"])
    assert await count_requests(pool) == before


async def test_invalid_public_request_is_refused_per_field_and_not_stored(http, pool):
    before = await count_requests(pool)

    r = await http.post("/v1/public/requests", json={"type": "access", "email": "nobody-at-example"})

    problem = assert_problem(r, 422)
    assert [e["field"] for e in problem["errors"]] == ["email"], problem
    assert await count_requests(pool) == before


async def test_a_public_idempotency_key_too_long_to_store_is_refused_by_name(http, pool):
    """8,000 characters overflow the index on the stored key: before, the anonymous caller got a
    bare 500; now 422 names the header, as on the staff API, and nothing is stored."""
    before = await count_requests(pool)

    r = await http.post("/v1/public/requests", headers={"Idempotency-Key": "k" * 8000},
                        json={"type": "access", "email": "long-key@example.com"})

    problem = assert_problem(r, 422)
    assert any("idempotency-key" in e["field"].lower() for e in problem["errors"]), problem
    assert await count_requests(pool) == before


async def test_the_requests_language_is_stored_and_shown(http, pool):
    headers = await staff_headers(pool, "agent")
    for given, stored in (({"language": "fr"}, "fr"), ({}, "en")):  # none: the policy's default
        body = {"type": "erasure", "subject": {"email": unique_email("language")}, **given}
        r = await http.post("/v1/requests", headers=headers, json=body)
        assert r.status_code == 201, r.text
        assert r.json()["language"] == stored
        assert (await http.get(f"/v1/requests/{r.json()['id']}", headers=headers)).json()["language"] == stored


async def test_same_idempotency_key_returns_the_same_request(http, pool):
    headers = {**await staff_headers(pool, "agent"), "Idempotency-Key": f"ticket-{uuid.uuid4().hex}"}
    email = unique_email("idem")
    body = {"type": "erasure", "subject": {"email": email}, "identity_attested": True}

    first = await http.post("/v1/requests", headers=headers, json=body)
    second = await http.post("/v1/requests", headers=headers, json=body)

    assert first.status_code == 201, first.text
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    # The first answer is the row as written, the repeat's as read back: the same request, though
    # a worker may have registered it meanwhile (its status and due dates).
    assert first.json().keys() == second.json().keys()
    registered = {"status", "due_date", "extended_due_date", "current_due_date", "acknowledge_by"}
    assert {k: v for k, v in first.json().items() if k not in registered} == {
        k: v for k, v in second.json().items() if k not in registered}
    assert await count_for(pool, email) == 1


async def test_same_client_request_id_returns_the_same_request(http, pool):
    headers = await staff_headers(pool, "agent")
    email = unique_email("client-id")
    body = {"type": "erasure", "subject": {"email": email}, "identity_attested": True,
            "client_request_id": f"crm-{uuid.uuid4().hex}"}

    first = await http.post("/v1/requests", headers=headers, json=body)
    second = await http.post("/v1/requests", headers=headers, json=body)

    assert first.status_code == 201, first.text
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert await count_for(pool, email) == 1


async def test_staff_endpoints_need_a_valid_token(http, pool):
    email = unique_email("auth")
    body = {"type": "erasure", "subject": {"email": email}}
    revoked = await staff_headers(pool, "compliance")
    await pool.execute("UPDATE staff_tokens SET revoked_at = now() WHERE token_hash = $1",
                       token_hash(revoked["Authorization"].removeprefix("Bearer ")))

    for headers in ({}, {"Authorization": "Bearer dsr_not-a-token-we-issued"}, revoked):
        assert_problem(await http.post("/v1/requests", headers=headers, json=body), 401)
        assert_problem(await http.get(f"/v1/requests/{uuid.uuid4()}", headers=headers), 401)
    assert await count_for(pool, email) == 0


async def test_agent_cannot_extend(http, pool):
    agent = await staff_headers(pool, "agent")
    r = await http.post("/v1/requests", headers=agent, json={
        "type": "access", "subject": {"email": unique_email("extend")}})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]

    refused = await http.post(f"/v1/requests/{rid}/extend", headers=agent,
                              json={"reason": "The request covers many systems and years"})

    assert_problem(refused, 403)
    view = await http.get(f"/v1/requests/{rid}", headers=agent)
    assert view.status_code == 200, view.text
    assert view.json()["extended"] is False


@pytest.mark.parametrize("request_id", [str(uuid.uuid4()), "not-a-uuid"], ids=["unknown-uuid", "not-a-uuid"])
async def test_unknown_request_is_404_problem(http, pool, request_id):
    r = await http.get(f"/v1/requests/{request_id}", headers=await staff_headers(pool, "agent"))
    assert_problem(r, 404)


async def test_keys_are_per_origin_and_bound_to_the_request(http, pool):
    """A subject cannot reach a staff request by guessing its key, and a key reused for another
    request is refused rather than answered with the first one."""
    headers = {**await staff_headers(pool, "agent"), "Idempotency-Key": f"ticket-{uuid.uuid4().hex[:6]}"}
    email = unique_email("key")
    staff = await http.post("/v1/requests", headers=headers,
                            json={"type": "erasure", "subject": {"email": email}})
    assert staff.status_code == 201
    public = await http.post("/v1/public/requests", headers={"Idempotency-Key": headers["Idempotency-Key"]},
                             json={"type": "access", "email": unique_email("other")})
    assert public.status_code == 202 and public.json()["id"] != staff.json()["id"]
    reused = await http.post("/v1/requests", headers=headers,
                             json={"type": "access", "subject": {"email": email}})
    body = assert_problem(reused, 409)
    assert "different request" in body["detail"]
    assert await count_for(pool, email) == 1


async def _runs(client, request_id: str) -> int:
    return len([w async for w in client.list_workflows(f"WorkflowId = 'dsr-{request_id}'")])


async def test_a_repeat_after_the_request_finished_never_runs_it_again(http, pool, mail_sink, dev_server, settings):
    """The same Idempotency-Key sent after the request completed answers the stored request; no
    second acknowledgement, response or run (and a stale row saying it still runs changes nothing:
    Temporal refuses to reuse a closed request's workflow id)."""
    headers = {**await staff_headers(pool, "agent"), "Idempotency-Key": f"ticket-{uuid.uuid4().hex}"}
    body = {"type": "erasure", "subject": {"email": unique_email("after-close")}, "identity_attested": True}
    first = await http.post("/v1/requests", headers=headers, json=body)
    request_id = first.json()["id"]
    await wait_for_letter(mail_sink, request_id, "response")
    handle = dev_server.client.get_workflow_handle(f"dsr-{request_id}")
    await handle.result()

    again = await http.post("/v1/requests", headers=headers, json=body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == request_id
    assert again.json()["status"] == "completed"
    row = dict(await pool.fetchrow("SELECT * FROM dsr_requests WHERE id = $1", uuid.UUID(request_id)))
    await start_request_workflow(dev_server.client, {**row, "status": "in_progress"},
                                 load_policy(settings.policy_path).policy.attention_after_minutes, task_queue="tq-unused",
                                 task_timeout=10)

    assert await _runs(dev_server.client, request_id) == 1
    await asyncio.sleep(1)  # a second run, had one started, would have acknowledged by now
    for purpose in ("acknowledgement", "response"):
        assert len(letters_for(mail_sink, request_id, purpose)) == 1, purpose


async def test_a_subjects_key_is_theirs_alone(http, pool):
    """Anyone may submit as a subject: a key another subject used (guessed, or predictable) neither
    blocks a request with a 409 nor tells that it was used; the same subject's repeat is still one
    request."""
    key = {"Idempotency-Key": f"form-{uuid.uuid4().hex[:6]}"}
    victim, attacker = unique_email("victim"), unique_email("attacker")
    first = await http.post("/v1/public/requests", headers=key, json={"type": "erasure", "email": victim})
    other = await http.post("/v1/public/requests", headers=key, json={"type": "access", "email": attacker})
    again = await http.post("/v1/public/requests", headers=key, json={"type": "erasure", "email": victim})
    changed = await http.post("/v1/public/requests", headers=key, json={"type": "access", "email": victim})

    assert (first.status_code, other.status_code, again.status_code) == (202, 202, 202), other.text
    assert other.json()["id"] != first.json()["id"] == again.json()["id"]
    assert "different request" in assert_problem(changed, 409)["detail"]
    assert (await count_for(pool, victim), await count_for(pool, attacker)) == (1, 1)
