"""Evidence packs: what compliance gets for a real request (JSON and the printable page), that no
code or token ever appears in it, and that the audit segment check names a tampered event."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from api.read_models.evidence import assemble_evidence
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.infra.db import connect, create_pool
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from schemas.workflow import workflow_id_for
from tests.conftest import make_database
from tests.fanout_stack import api, fanout_stack
from tests.support import (
    staff_headers,
    verification_code,
    verification_link,
    wait_for_letter,
)
from workers.dsr_worker import build_worker


async def test_pack_of_a_verified_and_extended_request(http, pool, mail_sink, dev_server):
    compliance = await staff_headers(pool, "compliance")
    email = f"evidence.{uuid.uuid4().hex[:8]}@example.com"
    rid = (await http.post("/v1/public/requests", json={"type": "erasure", "email": email})).json()["id"]
    verification = await wait_for_letter(mail_sink, rid, "verification")
    code, link = verification_code(verification), verification_link(verification)
    extended = await http.post(f"/v1/requests/{rid}/extend", headers=compliance,
                               json={"reason": "Records in six systems over nine years"})
    assert extended.status_code == 200, extended.text
    wrong = "000000" if code != "000000" else "111111"
    assert (await http.post(f"/v1/public/requests/{rid}/verify", json={"code": wrong})).status_code == 400
    assert (await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code})).status_code == 200
    await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 60)

    r = await http.get(f"/v1/requests/{rid}/evidence", headers=compliance)

    assert r.status_code == 200, r.text
    pack = r.json()
    assert pack["request"]["id"] == rid and pack["request"]["subject"]["email"] == email
    v = pack["verification"]
    assert v["required"] is True and v["method"] == "email_code" and v["verified_at"]
    assert [c["purpose"] for c in v["codes_sent"]] == ["verification"]
    assert [a["event"] for a in v["attempts"]] == ["verification.failed", "verification.succeeded"]
    assert v["attempts"][0]["attempts_left"] == 4
    d = pack["deadlines"]
    assert d["extended"] is True and d["current_due_date"] == d["extended_due_date"]
    assert d["extension"]["reason"] == "Records in six systems over nine years"
    assert d["extension"]["by"].startswith("compliance:")
    purposes = [letter["purpose"] for letter in pack["letters"]]
    assert {"acknowledgement", "verification", "extension", "response"} <= set(purposes)
    events = await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1", rid)
    assert pack["audit"]["verification"] == {
        "ok": True, "events": events, "broken_seq": None, "reason": None, "summary": f"ok {events} events"}
    assert [e["seq"] for e in pack["audit"]["events"]] == sorted(e["seq"] for e in pack["audit"]["events"])
    # Neither the code nor the link's token is anywhere in the pack.
    text = json.dumps(pack)
    assert code not in text and link.rsplit("=", 1)[1] not in text

    page = await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for expected in ("Evidence pack", f"all {events} event(s) of this request are linked",
                     "Records in six systems over nine years", "email_code", "verification.failed"):
        assert expected in page.text, expected
    assert code not in page.text


@pytest.mark.parametrize(("role", "json_status", "page_status"), [(None, 401, 303), ("agent", 403, 403)])
async def test_pack_needs_compliance(http, pool, role, json_status, page_status):
    headers = await staff_headers(pool, role) if role else {}
    rid = uuid.uuid4()
    assert (await http.get(f"/v1/requests/{rid}/evidence", headers=headers)).status_code == json_status
    page = await http.get(f"/v1/requests/{rid}/evidence.html", headers=headers)
    assert page.status_code == page_status
    if page_status == 303:  # a browser is sent to sign in, and back here after
        assert page.headers["location"] == f"/console/sign-in?next=/v1/requests/{rid}/evidence.html"


async def test_unknown_request_is_404(http, pool):
    r = await http.get(f"/v1/requests/{uuid.uuid4()}/evidence", headers=await staff_headers(pool))
    assert r.status_code == 404


async def test_pack_of_an_erasure_names_results_and_what_holds_kept(postgres, settings, pool, dev_server, tmp_path):
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "erasure", "subject": {"email": "ada@example.com"}, "identity_attested": True})
            rid = r.json()["id"]
            await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 90)
            pack = (await http.get(f"/v1/requests/{rid}/evidence", headers=await staff_headers(pool))).json()

    assert pack["verification"]["method"] == "attested"
    systems = {t["system"] for t in pack["plan"]["tasks"]}
    assert {"crm", "analytics", "billing", "email_marketing"} <= systems
    assert {t["system"]: t["status"] for t in pack["results"]}.keys() == systems
    assert all(t["status"] in ("done", "not_found") for t in pack["results"])
    kept = [k for k in pack["holds"]["kept_records"] if k["system"] == "billing"]
    assert kept and all(k["hold_kind"] == "statutory" and k["until"] for k in kept)
    assert sum(e["records"] for e in pack["holds"]["deferred_erasures"]) >= 3  # ada's three invoices at least
    assert pack["audit"]["verification"]["ok"] is True


async def test_segment_check_names_the_tampered_event(postgres, settings):
    """An event edited in place, and one edited and re-hashed, are both caught."""
    url = await make_database(postgres, "evidence")
    pool = await create_pool(url, min_size=1, max_size=3)
    try:
        row, _ = await create_request(
            pool, NewRequest(type="erasure", subject={"email": "tamper@example.com"}),
            loaded_policy=load_policy(settings.policy_path), secret=load_secret_key(settings), actor="tests", idempotency_key=None)
        rid = str(row["id"])
        async with pool.acquire() as conn:
            for n in range(3):
                await append_event(conn, event_key=f"{rid}:e{n}", request_id=rid, event_type="test.event",
                                   actor="tests", data={"n": n})
            await append_event(conn, event_key="other", event_type="test.other", actor="tests")
        secret = load_secret_key(settings)
        assert (await assemble_evidence(pool, rid, secret=secret))["audit"]["verification"]["ok"] is True

        target = await pool.fetchval("SELECT seq FROM audit_events WHERE event_key = $1", f"{rid}:e1")
        conn = await connect(url)
        try:
            await conn.execute("SET session_replication_role = replica")
            await conn.execute("""UPDATE audit_events SET data = '{"n": 7}' WHERE seq = $1""", target)
            report = (await assemble_evidence(pool, rid, secret=secret))["audit"]["verification"]
            assert (report["ok"], report["broken_seq"], report["reason"]) == (
                False, target, "content does not match its hash")

            # Re-hashing the edited row makes it match itself, but the next row still names the old hash.
            from dsrflow.domain.audit import _event_body, chain_hash
            edited = await conn.fetchrow("SELECT * FROM audit_events WHERE seq = $1", target)
            await conn.execute("UPDATE audit_events SET hash = $2 WHERE seq = $1", target,
                               chain_hash(edited["prev_hash"], _event_body(edited)))
            report = (await assemble_evidence(pool, rid, secret=secret))["audit"]["verification"]
            assert (report["ok"], report["broken_seq"], report["reason"]) == (
                False, target, "the next row does not name this row's hash")
        finally:
            await conn.close()
    finally:
        await pool.close()
