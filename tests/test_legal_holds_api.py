"""Legal-claims holds through the REST API: compliance places, lists, reads and releases them,
saying why the claim ended; releasing starts the erasure sweep for the subject; invalid input is refused field by field and
stores nothing; the audit trail records each step without the subject's address."""

from __future__ import annotations

import contextlib
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus

from api.app import create_app
from devstack.processes import free_port
from dsrflow.crypto.hashing import subject_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.holds_store import active_holds_for
from policy.model import DEFAULT_POLICY
from schemas.holds import SweepInput
from tests.hold_release import SETTLED, release_over_rest
from tests.support import api_client, staff_headers
from workers.dsr_worker import build_worker

PROBLEM = "application/problem+json"


@pytest.fixture
def holds_settings(settings):
    """The shipped policy, with its systems and categories (the session policy has no systems)."""
    return settings.model_copy(update={"policy_path": DEFAULT_POLICY})


@pytest.fixture
async def http(holds_settings, pool, dev_server, task_queue):
    async with build_worker(dev_server.client, holds_settings, pool, task_queue=task_queue):
        async with api_client(holds_settings, dev_server.client, task_queue) as client:
            yield client


@pytest.fixture
async def compliance(pool):
    return await staff_headers(pool, "compliance")


def unique_email(tag: str) -> str:
    return f"{tag}.{uuid.uuid4().hex[:10]}@example.com"


def controller_today() -> date:
    return datetime.now(ZoneInfo("Europe/Brussels")).date()


def hold_body(**change) -> dict:
    body = {
        "email": unique_email("held"),
        "systems": ["billing"],
        "categories": ["payments"],
        "reason": "Invoice 2024-118 disputed; claim filed at the Ghent enterprise court",
        "review_date": (controller_today() + timedelta(days=90)).isoformat(),
    }
    body.update(change)
    return {k: v for k, v in body.items() if v is not None}


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers["content-type"]
    body = response.json()
    assert body["status"] == status
    return body


async def counts(pool) -> tuple[int, int]:
    holds = await pool.fetchval("SELECT count(*) FROM legal_holds")
    events = await pool.fetchval("SELECT count(*) FROM audit_events WHERE event_type LIKE 'legal_hold.%'")
    return holds, events


async def hold_events(pool, hold_id: str) -> list[dict]:
    rows = await pool.fetch(
        "SELECT event_key, event_type, actor, data, request_id FROM audit_events"
        " WHERE data->>'hold_id' = $1 ORDER BY seq",
        hold_id,
    )
    return [dict(r) for r in rows]


async def sweep_started_with(dev_server, hold_id: str) -> SweepInput:
    """The sweep workflow the release started, and its input; then stop it: the tests only care
    that it was asked for."""
    handle = dev_server.client.get_workflow_handle(f"sweep-release-{hold_id}")
    described = await handle.describe()
    assert described.workflow_type == "ErasureSweepWorkflow"
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [sweep] = await dev_server.client.data_converter.decode(started.input.payloads, [SweepInput])
    if described.status == WorkflowExecutionStatus.RUNNING:
        with contextlib.suppress(Exception):
            await handle.terminate("test done")
    return sweep


async def test_place_list_read_release(http, pool, dev_server, holds_settings, compliance):
    email = unique_email("lifecycle")
    body = hold_body(email=email, systems=["billing", "crm"])

    placed = await http.post("/v1/legal-holds", headers=compliance, json=body)

    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert hold["subject"]["email"] == email
    assert hold["systems"] == ["billing", "crm"] and hold["categories"] == ["payments"]
    assert hold["basis"].startswith("Art. 17(3)(e)")
    assert hold["reason"] == body["reason"] and hold["review_date"] == body["review_date"]
    assert hold["active"] is True and hold["placed_by"].startswith("compliance:") and hold["placed_at"]
    assert hold["release_reason"] is None
    hold_id = hold["id"]

    # The erasure planner sees it under the shared subject hash.
    key = subject_hash(load_secret_key(holds_settings), email)
    assert key == subject_hash(load_secret_key(holds_settings), f"  {email.upper()} ")
    assert [h["id"] for h in await active_holds_for(pool, key)] == [hold_id]

    listed = await http.get("/v1/legal-holds", headers=compliance, params={"email": email})
    assert listed.status_code == 200, listed.text
    assert [h["id"] for h in listed.json()["holds"]] == [hold_id]
    active = await http.get("/v1/legal-holds", headers=compliance, params={"active": "true"})
    assert hold_id in [h["id"] for h in active.json()["holds"]]
    read = await http.get(f"/v1/legal-holds/{hold_id}", headers=compliance)
    assert read.status_code == 200 and read.json() == hold

    released = await release_over_rest(http, hold_id, headers=compliance,
                                       reason="  Claim withdrawn by the claimant on 1 December  ")

    assert released.status_code == 204, released.text
    after = (await http.get(f"/v1/legal-holds/{hold_id}", headers=compliance)).json()
    assert after["active"] is False and after["released_at"] and after["released_by"].startswith("compliance:")
    assert after["release_reason"] == "Claim withdrawn by the claimant on 1 December"
    assert await active_holds_for(pool, key) == []
    still_active = await http.get("/v1/legal-holds", headers=compliance,
                                  params={"active": "true", "email": email})
    assert still_active.json()["holds"] == []
    ended = await http.get("/v1/legal-holds", headers=compliance, params={"active": "false", "email": email})
    assert [h["id"] for h in ended.json()["holds"]] == [hold_id]

    events = await hold_events(pool, hold_id)
    assert [e["event_type"] for e in events] == ["legal_hold.placed", "legal_hold.released"]
    assert events[0]["data"] == {"hold_id": hold_id, "systems": ["billing", "crm"],
                                 "categories": ["payments"], "basis": hold["basis"],
                                 "review_date": body["review_date"]}
    assert events[1]["data"] == {"hold_id": hold_id}  # the reason is on the hold (test_audit_events_...)
    assert all(e["actor"].startswith("compliance:") and e["request_id"] is None for e in events)

    sweep = await sweep_started_with(dev_server, hold_id)
    assert sweep.subject_hash == key and hold_id in sweep.reason


async def test_whole_subject_hold_and_customer_id_lookup(http, pool, holds_settings, compliance):
    """Without systems/categories a hold covers everything; a customer id that an earlier
    request tied to an address names the subject."""
    email, customer_id = unique_email("customer"), f"C-{uuid.uuid4().hex[:8]}"
    await pool.execute(
        """INSERT INTO dsr_requests (id, request_type, regime, country, channel, subject_email,
                                     customer_id, received_at, status, policy_version)
           VALUES ($1, 'access', 'gdpr', 'BE', 'email', $2, $3, now(), 'completed', 'test')""",
        uuid.uuid4(), email, customer_id,
    )

    placed = await http.post("/v1/legal-holds", headers=compliance,
                             json=hold_body(email=None, systems=None, categories=None, customer_id=customer_id))

    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert hold["subject"] == {"email": email, "customer_id": customer_id}
    assert hold["systems"] is None and hold["categories"] is None
    [active] = await active_holds_for(pool, subject_hash(load_secret_key(holds_settings), email))
    assert active["id"] == hold["id"] and active["systems"] is None and active["categories"] is None


async def test_release_twice_is_harmless(http, pool, dev_server, compliance):
    hold_id = (await http.post("/v1/legal-holds", headers=compliance, json=hold_body())).json()["id"]
    first = await release_over_rest(http, hold_id, headers=compliance)
    released_at = (await http.get(f"/v1/legal-holds/{hold_id}", headers=compliance)).json()["released_at"]

    second = await release_over_rest(http, hold_id, headers=compliance, reason="Placed by mistake, wrong subject")

    assert first.status_code == 204 and second.status_code == 204, (first.text, second.text)
    again = (await http.get(f"/v1/legal-holds/{hold_id}", headers=compliance)).json()
    assert again["released_at"] == released_at and again["active"] is False
    assert again["release_reason"] == SETTLED  # the first reason stands
    events = await hold_events(pool, hold_id)
    assert [e["event_type"] for e in events] == ["legal_hold.placed", "legal_hold.released"]
    await sweep_started_with(dev_server, hold_id)


async def test_placing_again_after_a_lost_answer_returns_the_first_hold(http, pool, dev_server, compliance):
    """A client whose answer was lost (the API died after the commit) places the hold again with
    the same Idempotency-Key: it gets the first hold back, not a second one whose id it would
    never learn, and which would go on keeping the records once the first was released."""
    email = f"repeat-{uuid.uuid4().hex[:8]}@example.com"
    key = {**compliance, "Idempotency-Key": f"claim-{uuid.uuid4().hex}"}
    first = await http.post("/v1/legal-holds", headers=key, json=hold_body(email=email))
    again = await http.post("/v1/legal-holds", headers=key, json=hold_body(email=email))
    assert (first.status_code, again.status_code) == (201, 200), (first.text, again.text)
    assert again.json() == first.json()
    # The same key for another hold is refused, and stores nothing.
    before = await counts(pool)
    other = await http.post("/v1/legal-holds", headers=key, json=hold_body(email=email, reason="Another claim"))
    assert "already used for a different hold" in assert_problem(other, 409)["detail"]
    assert await counts(pool) == before
    held = (await http.get("/v1/legal-holds", headers=compliance, params={"email": email, "active": "true"})).json()
    assert [h["id"] for h in held["holds"]] == [first.json()["id"]]
    assert [e["event_type"] for e in await hold_events(pool, first.json()["id"])] == ["legal_hold.placed"]
    # Released, nothing holds the subject any more.
    assert (await release_over_rest(http, first.json()['id'], headers=compliance)).status_code == 204
    held = (await http.get("/v1/legal-holds", headers=compliance, params={"email": email, "active": "true"})).json()
    assert held["holds"] == []
    await sweep_started_with(dev_server, first.json()["id"])


async def test_release_stands_when_the_sweep_cannot_start(holds_settings, pool, compliance):
    """Temporal unreachable: the hold is still released, and the answer says the sweep is owed."""
    offline = holds_settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    app = create_app(offline)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                 timeout=60) as http:
        hold_id = (await http.post("/v1/legal-holds", headers=compliance, json=hold_body())).json()["id"]

        released = await release_over_rest(http, hold_id, headers=compliance)

        assert released.status_code == 202, released.text
        assert released.json()["active"] is False and released.json()["sweep_started"] is False
        assert f"/v1/legal-holds/{hold_id}" in released.json()["note"]
        assert (await http.get(f"/v1/legal-holds/{hold_id}", headers=compliance)).json()["active"] is False
    await app.state.dsr.close()


async def test_agent_cannot_hold_list_or_release(http, pool, compliance):
    agent = await staff_headers(pool, "agent")
    hold_id = (await http.post("/v1/legal-holds", headers=compliance, json=hold_body())).json()["id"]
    before = await counts(pool)

    assert_problem(await http.post("/v1/legal-holds", headers=agent, json=hold_body()), 403)
    assert_problem(await http.get("/v1/legal-holds", headers=agent), 403)
    assert_problem(await http.get(f"/v1/legal-holds/{hold_id}", headers=agent), 403)
    assert_problem(await release_over_rest(http, hold_id, headers=agent), 403)
    assert_problem(await http.post("/v1/legal-holds", json=hold_body()), 401)

    assert await counts(pool) == before
    assert (await http.get(f"/v1/legal-holds/{hold_id}", headers=compliance)).json()["active"] is True


@pytest.mark.parametrize(("body", "message"), [
    pytest.param({}, "is required", id="empty-object"),
    pytest.param({"reason": "   "}, "at least 10 characters", id="blank"),
    pytest.param({"reason": "  settled  "}, "at least 10 characters", id="too-short-once-trimmed"),
    pytest.param({"reason": "x" * 2001}, "at most 2000 characters", id="too-long"),
    pytest.param({"reason": "Claim settled\x1b[2J today"}, "control characters", id="control-characters"),
])
async def test_a_release_without_a_reason_is_refused_naming_it_and_releases_nothing(http, pool, compliance, body,
                                                                                       message):
    """A release says why the claim ended, as the placing says which claim: before, a release
    recorded only who and when, and an auditor could not tell why the records it kept were erased.
    A body that does not say it is refused."""
    hold_id = (await http.post("/v1/legal-holds", headers=compliance, json=hold_body())).json()["id"]
    before = await counts(pool)

    refused = await http.request("DELETE", f"/v1/legal-holds/{hold_id}", headers=compliance, json=body)

    problem = assert_problem(refused, 422)
    assert [e["field"] for e in problem["errors"]] == ["reason"], problem
    assert message in problem["errors"][0]["message"], problem
    assert await counts(pool) == before
    assert (await http.get(f"/v1/legal-holds/{hold_id}", headers=compliance)).json()["active"] is True


async def test_a_release_without_a_body_releases_with_no_reason_on_record(http, pool, dev_server, compliance):
    """`DELETE /v1/legal-holds/{id}` took no body before a release said why (DESIGN.md's interface):
    such a call still releases the hold and starts its sweep, with no reason on record."""
    hold_id = (await http.post("/v1/legal-holds", headers=compliance, json=hold_body())).json()["id"]

    released = await http.delete(f"/v1/legal-holds/{hold_id}", headers=compliance)

    assert released.status_code == 204, released.text
    after = (await http.get(f"/v1/legal-holds/{hold_id}", headers=compliance)).json()
    assert after["active"] is False and after["release_reason"] is None
    await sweep_started_with(dev_server, hold_id)


def _days(n: int) -> str:
    return (controller_today() + timedelta(days=n)).isoformat()


INVALID_HOLDS = [
    pytest.param({"systems": ["billing", "mainframe"]}, ["systems"], id="unknown-system"),
    pytest.param({"categories": ["horoscope"]}, ["categories"], id="unknown-category"),
    pytest.param({"systems": []}, ["systems"], id="empty-systems"),
    pytest.param({"review_date": _days(0)}, ["review_date"], id="review-today"),
    pytest.param({"review_date": _days(-30)}, ["review_date"], id="review-past"),
    pytest.param({"review_date": "next spring"}, ["review_date"], id="review-not-a-date"),
    pytest.param({"email": None}, ["email"], id="no-subject"),
    pytest.param({"email": None, "customer_id": "C-never-seen"}, ["customer_id"], id="unresolvable-customer"),
    pytest.param({"email": "not-an-address"}, ["email"], id="malformed-email"),
    pytest.param({"reason": "because"}, ["reason"], id="reason-too-short"),
    pytest.param({"reason": None}, ["reason"], id="no-reason"),
    pytest.param({"lawyer": "Me. Peeters"}, ["lawyer"], id="unknown-field"),
    pytest.param({"systems": ["mainframe"], "categories": ["horoscope"], "review_date": _days(-1),
                  "reason": "short"}, ["systems", "categories", "review_date", "reason"],
                 id="every-bad-field-at-once"),
    pytest.param({"email": None, "customer_id": "C-never-seen", "systems": ["mainframe"]},
                 ["systems", "customer_id"], id="policy-and-subject-at-once"),
]


@pytest.mark.parametrize(("change", "fields"), INVALID_HOLDS)
async def test_invalid_hold_is_refused_per_field_and_not_stored(http, pool, compliance, change, fields):
    before = await counts(pool)

    r = await http.post("/v1/legal-holds", headers=compliance, json=hold_body(**change))

    problem = assert_problem(r, 422)
    assert sorted(e["field"] for e in problem["errors"]) == sorted(fields), problem
    assert all(e["message"] for e in problem["errors"])
    assert await counts(pool) == before


async def test_systems_are_checked_against_the_current_policy(settings, pool, dev_server, task_queue, compliance):
    """The session policy has no systems: naming one is refused, holding everything is not."""
    async with api_client(settings, dev_server.client, task_queue) as http:
        refused = await http.post("/v1/legal-holds", headers=compliance, json=hold_body(categories=None))
        accepted = await http.post("/v1/legal-holds", headers=compliance,
                                   json=hold_body(systems=None, categories=["payments"]))
    problem = assert_problem(refused, 422)
    assert [e["field"] for e in problem["errors"]] == ["systems"]
    assert accepted.status_code == 201, accepted.text


@pytest.mark.parametrize("hold_id", [str(uuid.uuid4()), "not-a-uuid"], ids=["unknown-uuid", "not-a-uuid"])
async def test_unknown_hold_is_404(http, pool, compliance, hold_id):
    before = await counts(pool)
    assert_problem(await http.get(f"/v1/legal-holds/{hold_id}", headers=compliance), 404)
    assert_problem(await release_over_rest(http, hold_id, headers=compliance), 404)
    assert await counts(pool) == before


async def test_audit_events_carry_no_address_or_reason(http, pool, compliance):
    """The address, the claim a hold was placed for and why it ended stay out of the audit trail,
    which can never be changed: they are free text that may name people, kept on the hold."""
    email = unique_email("Private.Person")
    body = hold_body(email=email)
    hold_id = (await http.post("/v1/legal-holds", headers=compliance, json=body)).json()["id"]
    assert (await release_over_rest(http, hold_id, headers=compliance)).status_code == 204
    assert (await http.get(f"/v1/legal-holds/{hold_id}", headers=compliance)).json()["release_reason"] == SETTLED

    rows = await pool.fetch(
        "SELECT event_key, event_type, actor, data::text AS data FROM audit_events WHERE data->>'hold_id' = $1",
        hold_id,
    )
    assert len(rows) == 2
    for row in rows:
        text = " ".join(str(v) for v in row.values()).lower()
        assert email.lower() not in text and "@" not in text
        assert body["reason"].lower() not in text and SETTLED.lower() not in text
