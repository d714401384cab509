"""Evidence packs: what compliance gets for a real request (JSON and the printable page), that no
code or token ever appears in it, and that the audit segment check names a tampered event."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import pytest

from api.read_models.evidence import assemble_evidence
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.domain.audit_anchors import write_anchor
from dsrflow.domain.references import short_reference
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from schemas.workflow import workflow_id_for
from tests.audit_support import rehash, tampering
from tests.conftest import database_pool
from tests.fanout_stack import api, fanout_stack
from tests.support import (
    api_client,
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
    chain = pack["audit"]["verification"]
    assert (chain["ok"], chain["events"], chain["broken_seq"], chain["reason"]) == (True, events, None, None)
    assert chain["summary"].startswith(f"ok {events} events in 1 chain(s)"), chain
    assert [e["seq"] for e in pack["audit"]["events"]] == sorted(e["seq"] for e in pack["audit"]["events"])
    # Neither the code nor the link's token is anywhere in the pack.
    text = json.dumps(pack)
    assert code not in text and link.rsplit("=", 1)[1] not in text

    page = await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for expected in ("Evidence pack", f"all {events} event(s) of this request are linked",
                     "Records in six systems over nine years", "one-time code from the e-mail to the subject",
                     "Wrong verification code"):
        assert expected in page.text, expected
    # Words for the codes the JSON keeps (the method, the events), on the whole page.
    assert "email_code" not in page.text and "verification.failed" not in page.text
    assert code not in page.text


# Staff and the authorities compliance hands the pack to read the type by its plain name, as the
# staff alerts give it (activities/letter_labels.py `staff_type_label`): the article of the request's
# law cited, the law's word for an erasure. The pack gave the subject's words ("access to your
# personal data (Art. 15 GDPR)", "deletion of your personal information").
@pytest.mark.parametrize(("regime", "kind", "label"), [
    ("gdpr", "access", "access (Art. 15 GDPR)"),
    ("uk_gdpr", "access", "access (Art. 15 UK GDPR)"),
    ("ccpa", "access", "access"),
    ("gdpr", "erasure", "erasure (Art. 17 GDPR)"),
    ("ccpa", "erasure", "deletion"),
])
async def test_the_pack_names_the_type_as_staff_read_it_in_the_law_of_the_requests_regime(http, pool, regime, kind,
                                                                                          label):
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": kind, "subject": {"email": f"evidence.{uuid.uuid4().hex[:8]}@example.com"}, "regime": regime})
    assert r.status_code == 201, r.text
    page = await http.get(f"/v1/requests/{r.json()['id']}/evidence.html", headers=await staff_headers(pool, "compliance"))
    assert page.status_code == 200
    assert f"<dt>Type</dt><dd>{label}</dd>" in page.text


async def test_the_pack_is_titled_by_the_requests_reference_and_keeps_its_id_where_matched(http, pool):
    """The console names a request by its short reference; the pack's title and heading gave the
    whole id. The id stays where a tool or an auditor matches it: the facts, the links."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "subject": {"email": f"evidence.{uuid.uuid4().hex[:8]}@example.com"}})
    rid = r.json()["id"]
    page = (await http.get(f"/v1/requests/{rid}/evidence.html", headers=await staff_headers(pool, "compliance"))).text
    title, heading = re.search(r"<title>(.*?)</title>", page).group(1), re.search(r"<h1>(.*?)</h1>", page).group(1)
    assert short_reference(rid) in title and short_reference(rid) in heading
    assert rid not in title and rid not in heading
    assert f'id="request-id">{rid}</span>' in page and f'href="/v1/requests/{rid}/evidence"' in page


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


async def test_pack_names_the_tampered_event_and_the_anchor(postgres, settings, dev_server, task_queue):
    """An event edited in place, one edited and re-hashed, and, once anchored, the request's chain
    re-hashed to its end: the JSON and the printable page name each break."""
    async with database_pool(postgres, "evidence", max_size=3) as (url, pool):
        db_settings = settings.model_copy(update={"database_url": url})
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

        async def audit() -> dict:
            return (await assemble_evidence(pool, rid, secret=secret))["audit"]

        clean = await audit()
        assert clean["verification"]["ok"] is True and clean["anchors"] == [] and clean["not_yet_anchored"] == 4
        async with pool.acquire() as conn:
            anchor = await write_anchor(conn)
        clean = await audit()
        assert [(a["position"], a["chain_id"], a["chain_pos"], a["hash"], a["events_after"])
                for a in clean["anchors"]] == [(anchor.position, rid, 4, anchor.hash, 0)]
        assert clean["not_yet_anchored"] == 0
        assert [e["chain_pos"] for e in clean["events"]] == [1, 2, 3, 4]  # request.created, then e0..e2

        target = await pool.fetchval("SELECT seq FROM audit_events WHERE event_key = $1", f"{rid}:e1")
        after = await pool.fetchval("SELECT seq FROM audit_events WHERE event_key = $1", f"{rid}:e2")
        headers = await staff_headers(pool)
        async with tampering(url) as conn, api_client(db_settings, dev_server.client, task_queue) as http:
            await conn.execute("""UPDATE audit_events SET data = '{"n": 7}' WHERE seq = $1""", target)
            report = (await audit())["verification"]
            assert (report["ok"], report["broken_seq"]) == (False, target)
            assert report["reason"].endswith("content does not match its hash"), report

            # Re-hashing the edited row makes it match itself, but the next row still names the old hash.
            await rehash(conn, rid, 3, through_tail=False)
            report = (await audit())["verification"]
            assert (report["ok"], report["broken_seq"]) == (False, after)
            assert report["reason"].endswith("prev_hash does not match the previous event of its chain")

            # Re-hashing to the end mends every link, but not the head the anchor committed to.
            await rehash(conn, rid, 3)
            report = (await audit())["verification"]
            last = await pool.fetchval("SELECT seq FROM audit_events WHERE chain_id = $1 AND chain_pos = 4", rid)
            assert (report["ok"], report["broken_seq"]) == (False, last)
            assert report["reason"] == f"chain {rid} position 4 differs from the hash anchor {anchor.position} committed to"
            page = await http.get(f"/v1/requests/{rid}/evidence.html", headers=headers)
            assert page.status_code == 200
            assert f"broken at event {last}: chain {rid} position 4 differs from the hash anchor" in page.text
            assert f"Anchor {anchor.position} (" in page.text and "all 4 event(s)" not in page.text
