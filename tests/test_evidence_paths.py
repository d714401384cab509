"""The evidence pack of the paths a request takes through the systems, on a real run (the demo
systems, a worker, Temporal, Postgres, the SMTP sink), read as a DPO reads it: an access request
(what each system gave the package), an erasure that kept records under a statutory duty and a
legal-claims hold (a refusal in part; what was erased once the hold was released, and when), and a
rectification a processor could not take, which compliance resolved by hand (who, when, why)."""

from __future__ import annotations

import asyncio
import re

from api.auth import create_token
from schemas.workflow import workflow_id_for
from tests.evidence_pages import LOCAL_TIME, assert_reads_as_words, readable, section
from tests.fanout_stack import api, fanout_stack
from tests.hold_release import SETTLED, release_over_rest
from tests.support import eventually, place_claims_hold, staff_headers, staff_task_answer
from workers.dsr_worker import build_worker


async def test_access_erasure_under_holds_and_a_rectification_resolved_by_staff(
        postgres, settings, pool, dev_server, tmp_path, mail_sink):
    client = dev_server.client
    async with fanout_stack(postgres, settings, client, tmp_path) as stack:
        hold = await place_claims_hold(pool, stack.settings, "grace@example.com", ["crm"])
        async with build_worker(client, stack.settings, pool), api(stack) as http:
            compliance = {"Authorization": f"Bearer {await create_token(pool, 'compliance', 'Jane Peeters')}"}
            agent = await staff_headers(pool, "agent")

            async def opened(type_: str, email: str, **facts) -> str:
                r = await http.post("/v1/requests", headers=agent, json={
                    "type": type_, "subject": {"email": email}, "identity_attested": True, **facts})
                assert r.status_code == 201, r.text
                return r.json()["id"]

            async def page(rid: str) -> str:
                return (await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text

            async def completed(rid: str) -> None:
                assert (await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(),
                                               90))["status"] == "completed"

            access, erasure = await opened("access", "ada@example.com"), await opened("erasure", "grace@example.com")
            rectification = await opened("rectification", "ada@example.com", corrections={"name": "Ada King"})
            for rid in (access, erasure):
                await completed(rid)

            async def needs_staff() -> bool:  # OpenDSR has no rectification: the processor is told by hand
                return bool(await pool.fetchval("SELECT true FROM system_tasks WHERE request_id = $1 AND "
                                                "system = 'email_marketing' AND status = 'needs_attention'",
                                                rectification))

            await eventually(needs_staff)
            resolved = await staff_task_answer(http, rectification, "resolve-task", {
                "system": "email_marketing", "note": "Sent the correction to the processor, ticket 7"}, compliance)
            assert resolved.status_code == 200, resolved.text
            await completed(rectification)
            pages = {"access": await page(access), "erasure": await page(erasure),
                     "rectification": await page(rectification)}

            released = await release_over_rest(http, hold['id'], headers=compliance)
            assert released.status_code in (202, 204), released.text

            async def erased() -> bool:
                return await pool.fetchval("SELECT count(*) = count(done_at) FROM deferred_erasures "
                                           "WHERE request_id = $1 AND hold_kind = 'legal_claims'", erasure)

            await eventually(erased)
            after_release = await page(erasure)

    for text in pages.values():
        assert_reads_as_words(text)
        # Not extended: the latest date an extension could reach is no due date of the request's.
        deadlines = section(readable(text), "Deadlines", "Decisions")
        assert "Extended no (the law would have allowed it up to" in deadlines, deadlines
        assert "Latest extended due date" not in deadlines

    # What each system gave the access package: those read into it have no task row.
    package = section(readable(pages["access"]), "Packages", "Letters sent")
    assert re.search(r"What the package holds, per system: .*CRM \(contacts, support requests, live chat\): "
                     r"\d+ record\(s\)", package), package
    for label in ("Billing (customers, invoices, payments, mandates)", "Website analytics (users and page events)",
                  "E-mail marketing (newsletters)"):
        assert re.search(re.escape(label) + r": \d+ record\(s\)", package), (label, package)

    # Records kept from the erasure make its response a refusal in part, with the remedies.
    decisions = section(readable(pages["erasure"]), "Decisions", "Plan")
    assert re.search(r"Refused in part the request was carried out except for: 5 record\(s\) kept under the holds "
                     r"set out in Holds and kept records\. The response letter, with the reasons and the remedies "
                     f"\\(complaint to the supervisory authority, judicial remedy\\), went {LOCAL_TIME}, by the due "
                     "date", decisions), decisions
    assert "No decision" not in decisions
    # Released, the hold's records went: the pack says when.
    kept = section(readable(after_release), "Holds and kept records", "Packages")
    assert re.search(f"1 record\\(s\\) of contacts in the system “CRM \\(contacts, support requests, live chat\\)”, kept under the "
                     f"legal-claims hold placed {LOCAL_TIME} \\(“Dispute over a support contract, claim 2026/17”\\), to "
                     f"be erased after its release \\(1 erased since, the last {LOCAL_TIME}\\)", kept), kept
    # And why it was released, as compliance said it (DELETE /v1/legal-holds/{id}).
    assert re.search(f"{LOCAL_TIME} by .+; why: “{SETTLED}”", kept), kept

    # Who resolved the processor's task by hand, when, why it needed them, and their note (said once).
    results = section(readable(pages["rectification"]), "Results per system", "Holds and kept records")
    row = results.split("E-mail marketing (newsletters) correct done", 1)[1]
    assert re.search(f"it needed staff from {LOCAL_TIME}: OpenDSR v2 has no request type for rectification.*; "
                     f"resolved {LOCAL_TIME} by Jane Peeters \\(compliance\\): “Sent the correction to the processor, "
                     "ticket 7”", row), row
    assert "resolved by staff:" not in row.split("Processors asked", 1)[0]
