"""The release gate: where the policy asks for it, the response (with the subject's package) waits
in `awaiting_approval` until compliance approves it, or denies the request."""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile

import pytest
from temporalio.worker import Replayer

from dsrflow.crypto.keys import load_keyring
from dsrflow.infra.temporal_client import build_data_converter
from schemas.workflow import workflow_id_for
from tests.support import assert_problem, letters_for, live_view, served, staff_headers, wait_for_letter
from tests.yaml_files import dump_yaml, read_yaml
from workflows.dsr import DataSubjectRequestWorkflow


@pytest.fixture
def approval_settings(settings, lifecycle_policy, tmp_path):
    content = read_yaml(lifecycle_policy)
    content["approval_required_for"] = ["access"]
    path = tmp_path / "approval-policy.yaml"
    path.write_text(dump_yaml(content, sort_keys=False))
    return settings.model_copy(update={"policy_path": path})


@pytest.fixture
async def http(approval_settings, pool, dev_server, task_queue):
    async with served(approval_settings, pool, dev_server.client, task_queue) as client:
        yield client


async def open_request(http, pool, type_: str) -> str:
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": type_, "subject": {"email": f"gate.{uuid.uuid4().hex[:8]}@example.com"}, "identity_attested": True})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def wait_for_status(http, pool, request_id: str, status: str, timeout: float = 30) -> dict:
    return await live_view(http, await staff_headers(pool, "agent"), request_id,
                           lambda view: view["status"] == status, timeout)


async def event_types(pool, request_id: str) -> list[str]:
    rows = await pool.fetch("SELECT event_type FROM audit_events WHERE request_id = $1 ORDER BY seq", uuid.UUID(request_id))
    return [r["event_type"] for r in rows]


async def test_access_response_waits_for_compliance_approval(http, pool, mail_sink, dev_server, approval_settings):
    rid = await open_request(http, pool, "access")
    compliance = await staff_headers(pool, "compliance")

    view = await wait_for_status(http, pool, rid, "awaiting_approval")
    assert view["approval_required"] is True and view["approval"] is None
    await wait_for_letter(mail_sink, rid, "staff_alert")
    assert letters_for(mail_sink, rid, "response") == []
    queue = (await http.get("/v1/requests", headers=compliance, params={"q": rid, "needs_attention": "true"})).json()
    assert [i["id"] for i in queue["items"]] == [rid]

    review = await http.get(f"/v1/requests/{rid}/package", headers=compliance)
    assert review.status_code == 200 and review.headers["content-type"] == "application/zip"
    assert "summary.html" in zipfile.ZipFile(io.BytesIO(review.content)).namelist()
    assert_problem(await http.post(f"/v1/requests/{rid}/approve", headers=await staff_headers(pool, "agent")), 403)

    approved = await http.post(f"/v1/requests/{rid}/approve", headers=compliance, json={"note": "Package checked"})

    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] in ("in_progress", "completed")
    view = await live_view(http, compliance, rid)
    assert view["approval"]["note"] == "Package checked"
    assert "/portal/packages/" in (await wait_for_letter(mail_sink, rid, "response")).get_body(("plain",)).get_content()
    handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))
    assert (await handle.result())["status"] == "completed"
    events = await event_types(pool, rid)
    gate = ["status.awaiting_approval", "package.reviewed", "approval.granted", "status.in_progress", "status.completed"]
    seen = [e for e in events if e in gate]
    # The approval is on record before the status it releases, and the response after both.
    assert seen == gate, seen
    # The run with the gate replays deterministically against the same code.
    replayer = Replayer(workflows=[DataSubjectRequestWorkflow],
                        data_converter=build_data_converter(load_keyring(approval_settings)))
    await replayer.replay_workflow(await handle.fetch_history())


async def test_compliance_may_deny_instead_of_approving(http, pool, mail_sink):
    rid = await open_request(http, pool, "access")
    await wait_for_status(http, pool, rid, "awaiting_approval")

    denied = await http.post(f"/v1/requests/{rid}/deny", headers=await staff_headers(pool, "compliance"),
                             json={"reason_code": "manifestly_unfounded", "explanation": "The package would disclose another person's data"})

    assert denied.status_code == 200, denied.text
    await wait_for_letter(mail_sink, rid, "denial")
    await wait_for_status(http, pool, rid, "denied")
    assert letters_for(mail_sink, rid, "response") == []


async def test_types_without_the_gate_complete_and_cannot_be_approved(http, pool, mail_sink):
    rid = await open_request(http, pool, "erasure")
    await wait_for_letter(mail_sink, rid, "response")
    view = await wait_for_status(http, pool, rid, "completed")
    assert view["approval_required"] is False

    compliance = await staff_headers(pool, "compliance")

    assert_problem(await http.post(f"/v1/requests/{rid}/approve", headers=compliance), 409)
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "subject": {"email": f"unverified.{uuid.uuid4().hex[:8]}@example.com"}})
    await wait_for_letter(mail_sink, r.json()["id"], "verification")
    early = await http.post(f"/v1/requests/{r.json()['id']}/approve", headers=compliance)
    assert "not awaiting approval (status awaiting_verification)" in assert_problem(early, 409)["detail"]


async def test_package_review_of_a_request_without_one_is_404(http, pool):
    rid = await open_request(http, pool, "erasure")
    assert_problem(await http.get(f"/v1/requests/{rid}/package", headers=await staff_headers(pool, "compliance")), 404)


async def test_two_concurrent_approvals_release_once(http, pool, mail_sink):
    """Two compliance officers press Approve at the same moment: one releases the response, the
    other is told it is no longer awaiting approval (the handler re-checks what its validator saw)."""
    rid = await open_request(http, pool, "access")
    await wait_for_status(http, pool, rid, "awaiting_approval")
    headers = await staff_headers(pool, "compliance")
    answers = await asyncio.gather(*(http.post(f"/v1/requests/{rid}/approve", headers=headers,
                                               json={"note": f"officer {n}"}) for n in (1, 2)))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    # Refused by the handler's re-check, or (the response goes out in moments) by the finished workflow.
    refusal = next(a for a in answers if a.status_code == 409).json()["detail"]
    assert any(reason in refusal for reason in ("not awaiting approval", "has finished", "already closed")), refusal
    await wait_for_letter(mail_sink, rid, "response")
    await wait_for_status(http, pool, rid, "completed")
    assert (await event_types(pool, rid)).count("approval.granted") == 1
    assert len(letters_for(mail_sink, rid, "response")) == 1


async def test_whoever_attested_the_identity_cannot_approve_the_request_too(http, pool, mail_sink):
    """The approval is a second look at what one member of staff vouched for: a compliance officer
    who opened the request attesting the subject's identity cannot release it alone (before, the
    same token opened and approved it); another officer can."""
    attester = await staff_headers(pool, "compliance")
    r = await http.post("/v1/requests", headers=attester, json={
        "type": "access", "subject": {"email": f"gate.{uuid.uuid4().hex[:8]}@example.com"}, "identity_attested": True})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    await wait_for_status(http, pool, rid, "awaiting_approval")
    refused = await http.post(f"/v1/requests/{rid}/approve", headers=attester, json={"note": "looks fine"})
    assert_problem(refused, 409)
    assert "you attested this subject's identity, so you cannot also approve" in refused.json()["detail"]
    assert "approval.granted" not in await event_types(pool, rid)

    approved = await http.post(f"/v1/requests/{rid}/approve", headers=await staff_headers(pool, "compliance"),
                               json={"note": "second look"})
    assert approved.status_code == 200, approved.text
    await wait_for_letter(mail_sink, rid, "response")
