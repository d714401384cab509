"""The histories tests/histories/record.py records of requests staff decide at a gate: an objection
decided, a task retried then resolved, a restriction lifted, an access request and an attested
erasure approved, a request cancelled while it waits for verification. Each drives a real request
through the real API and worker that `record.py` runs, and returns its workflow's history (JSON);
`history_of` is record.py's too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
from temporalio.client import Client

from devstack.smtp_sink import MailSink
from tests.support import staff_headers, wait_for_letter
from workflows.dsr import DataSubjectRequestWorkflow


async def history_of(client: Client, request_id: str) -> str:
    handle = client.get_workflow_handle_for(DataSubjectRequestWorkflow.run, f"dsr-{request_id}")
    state = await handle.result()
    assert state.status == "completed", state.status
    return (await handle.fetch_history()).to_json()


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(300):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _state(client: Client, request_id: str):
    return await client.get_workflow_handle(f"dsr-{request_id}").query(DataSubjectRequestWorkflow.state)


async def record_objection_decided(http: httpx.AsyncClient, pool: asyncpg.Pool, client: Client) -> str:
    """An objection to legitimate-interest processing, decided by compliance (the objection gate)."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "objection", "objection_scope": "legitimate_interest",
        "subject": {"email": "ada@example.com"}, "identity_attested": True})
    r.raise_for_status()
    rid = r.json()["id"]
    await _until(lambda: _awaiting_decision(client, rid), "the objection decision")
    r = await http.post(f"/v1/requests/{rid}/decide-objection", headers=await staff_headers(pool, "compliance"),
                        json={"compelling_grounds": False, "explanation": "No overriding interest in analytics."})
    r.raise_for_status()
    return await history_of(client, rid)


async def _awaiting_decision(client: Client, rid: str) -> bool:
    return (await _state(client, rid)).awaiting_decision


async def record_task_retried_and_resolved(http: httpx.AsyncClient, pool: asyncpg.Pool, client: Client) -> str:
    """A rectification the OpenDSR processor cannot do: its task needs attention, is retried (and
    needs attention again), then resolved by staff."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "rectification", "subject": {"email": "grace@example.com"}, "identity_attested": True,
        "corrections": {"name": "Grace B. Hopper"}})
    r.raise_for_status()
    rid = r.json()["id"]
    compliance = await staff_headers(pool, "compliance")

    async def stuck(attempt: int) -> bool:
        return any(t.system == "email_marketing" and t.status == "needs_attention" and t.attempt == attempt
                   for t in (await _state(client, rid)).results)

    await _until(lambda: stuck(1), "the e-mail task needing attention")
    r = await http.post(f"/v1/requests/{rid}/retry-task", headers=compliance, json={"system": "email_marketing"})
    r.raise_for_status()
    await _until(lambda: stuck(2), "the retried task needing attention")
    r = await http.post(f"/v1/requests/{rid}/resolve-task", headers=compliance,
                        json={"system": "email_marketing", "note": "Told the provider by e-mail, ticket 88"})
    r.raise_for_status()
    return await history_of(client, rid)


async def record_restriction_lifted(http: httpx.AsyncClient, pool: asyncpg.Pool, client: Client) -> str:
    """A restriction under Art. 18(1)(c), in force (the OpenDSR processor's task resolved by
    staff), then lifted by compliance: the letter, the lift in every system (the processor's
    again resolved by staff), the restriction recorded lifted."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "restriction", "restriction_grounds": ["needed_for_legal_claims"],
        "subject": {"email": "grace@example.com"}, "identity_attested": True})
    r.raise_for_status()
    rid = r.json()["id"]
    compliance = await staff_headers(pool, "compliance")

    async def stuck(action: str) -> bool:
        return any(t.system == "email_marketing" and t.action == action and t.status == "needs_attention"
                   for t in (await _state(client, rid)).results)

    async def resolve(action: str) -> None:
        await _until(lambda: stuck(action), f"the e-mail task ({action}) needing attention")
        answer = await http.post(f"/v1/requests/{rid}/resolve-task", headers=compliance,
                                 json={"system": "email_marketing", "note": "Told the provider by phone"})
        answer.raise_for_status()

    async def in_force() -> bool:
        row = await pool.fetchrow("SELECT 1 FROM restrictions WHERE request_id = $1", rid)
        return row is not None

    await resolve("restrict")
    await _until(in_force, "the restriction in force")
    r = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=compliance,
                        json={"reason": "The claim the subject needed the records for was settled"})
    r.raise_for_status()
    await resolve("lift_restriction")
    return await history_of(client, rid)


async def record_approved_access(http: httpx.AsyncClient, pool: asyncpg.Pool, client: Client) -> str:
    """An access request held for compliance's approval (the approval gate), then approved."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "subject": {"email": "grace@example.com"}, "identity_attested": True})
    r.raise_for_status()
    rid = r.json()["id"]

    async def awaiting() -> bool:
        return (await _state(client, rid)).status == "awaiting_approval"

    await _until(awaiting, "the approval gate")
    r = await http.post(f"/v1/requests/{rid}/approve", headers=await staff_headers(pool, "compliance"),
                        json={"note": "Package checked"})
    r.raise_for_status()
    return await history_of(client, rid)


async def record_approved_attested_erasure(http: httpx.AsyncClient, pool: asyncpg.Pool, sink: MailSink,
                                           client: Client) -> str:
    """An erasure an agent attested, held for compliance's approval before any system is touched
    (approval_required_for: attested_erasure), then approved and carried out."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "erasure", "subject": {"email": "tracked@example.com"}, "identity_attested": True})
    r.raise_for_status()
    rid = r.json()["id"]

    async def awaiting() -> bool:
        return (await _state(client, rid)).status == "awaiting_approval"

    await _until(awaiting, "the approval gate before the systems")
    r = await http.post(f"/v1/requests/{rid}/approve", headers=await staff_headers(pool, "compliance"),
                        json={"note": "Identity checked on the phone"})
    r.raise_for_status()
    await wait_for_letter(sink, rid, "response", 60)
    return await history_of(client, rid)


async def record_cancelled_by_staff(http: httpx.AsyncClient, pool: asyncpg.Pool, sink: MailSink,
                                    client: Client) -> str:
    """Staff close a request unanswered while it waits for the subject's identity: the subject
    gets the cancellation letter with the reason and the remedies."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "erasure", "subject": {"email": "linus@example.com"}})
    r.raise_for_status()
    rid = r.json()["id"]
    await wait_for_letter(sink, rid, "verification")
    # Compliance: a cancellation that is not the subject's withdrawal refuses the request.
    r = await http.post(f"/v1/requests/{rid}/cancel", headers=await staff_headers(pool, "compliance"),
                        json={"reason": "Opened twice by mistake; the other request goes on"})
    assert r.status_code == 200, r.text
    await wait_for_letter(sink, rid, "cancellation")
    handle = client.get_workflow_handle_for(DataSubjectRequestWorkflow.run, f"dsr-{rid}")
    assert (await handle.result()).status == "cancelled"
    return (await handle.fetch_history()).to_json()

