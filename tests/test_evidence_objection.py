"""An objection's evidence pack read as a DPO reads it, on a real run (the demo systems, a worker,
Temporal, Postgres, the letters as the SMTP sink kept them), decided both ways: compelling grounds
(the objection refused in part, the processing continues) and none (the processing stops). The
page said only that the objection was decided: not what it was to, on which article, that the
override is a refusal with remedies, nor when the letter went and whether by the due date; its
times were UTC beside deadline days counted in Brussels."""

from __future__ import annotations

import asyncio
import re

from api.auth import create_token
from schemas.workflow import workflow_id_for
from tests.evidence_pages import LOCAL_TIME, assert_reads_as_words, readable, section
from tests.fanout_stack import api, fanout_stack
from tests.support import staff_headers, wait_for_letter
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow


async def _objection(http, client, pool, compliance: dict, grounds: bool, explanation: str) -> str:
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "identity_attested": True, "type": "objection", "objection_scope": "legitimate_interest",
        "subject": {"email": "ada@example.com"}})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    handle = client.get_workflow_handle(workflow_id_for(rid))
    for _ in range(300):
        if (await handle.query(DataSubjectRequestWorkflow.state)).awaiting_decision:
            break
        await asyncio.sleep(0.1)
    decided = await http.post(f"/v1/requests/{rid}/decide-objection", headers=compliance,
                              json={"compelling_grounds": grounds, "explanation": explanation})
    assert decided.status_code == 200, decided.text
    assert (await asyncio.wait_for(handle.result(), 90))["status"] == "completed"
    return rid


async def test_an_objections_pack_states_the_decision_its_basis_and_the_letter(
        postgres, settings, pool, dev_server, tmp_path, mail_sink):
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            compliance = {"Authorization": f"Bearer {await create_token(pool, 'compliance', 'Jane Peeters')}"}
            stopped = await _objection(http, dev_server.client, pool, compliance, False,
                                       "No overriding interest in analytics.")
            overridden = await _objection(http, dev_server.client, pool, compliance, True,
                                          "Fraud monitoring is required by our acquirer.")
            for rid in (stopped, overridden):
                await wait_for_letter(mail_sink, rid, "response")
            packs = {rid: (await http.get(f"/v1/requests/{rid}/evidence", headers=compliance)).json()
                     for rid in (stopped, overridden)}
            pages = {rid: (await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text
                     for rid in (stopped, overridden)}

    for rid in (stopped, overridden):
        objection = packs[rid]["decisions"]["objection"]
        # The JSON keeps the codes tools read, and says whether the letter went by the due date.
        assert objection["scope"] == "legitimate_interest" and objection["letter_on_time"] is True
        assert objection["letter_sent_at"] and objection["by"].startswith("compliance:")
        assert_reads_as_words(pages[rid])
        decisions = section(readable(pages[rid]), "Decisions", "Plan")
        assert re.search(f"Objection decided {LOCAL_TIME} by Jane Peeters \\(compliance\\), on the objection to "
                         r"processing based on the controller's legitimate interests \(Art\. 21\(1\) GDPR\)",
                         decisions), decisions
        assert re.search(f"went {LOCAL_TIME}, by the due date", decisions), decisions
        assert "All times are in the controller's timezone, Europe/Brussels" in readable(pages[rid])

    stop = section(readable(pages[stopped]), "Decisions", "Plan")
    assert "no compelling legitimate grounds override it, so the processing stops in every system" in stop
    assert "“No overriding interest in analytics.” The response letter telling the subject went" in stop
    assert "refuses" not in stop

    override = section(readable(pages[overridden]), "Decisions", "Plan")
    assert ("compelling legitimate grounds override the objection, so the processing continues. "
            "Their reasons: “Fraud monitoring is required by our acquirer.” This refuses the objection in part: "
            "the response letter, with these reasons and the remedies (complaint to the supervisory authority, "
            "judicial remedy), went") in override
    results = section(readable(pages[overridden]), "Results per system", "Holds and kept records")
    assert "No system was changed: the objection was overridden on compelling grounds" in results
    # The close's audit event counts the system tasks that ran: none where the objection was
    # overridden (it said as many as the plan held, as if each system had been changed).
    ran = "SELECT (data->>'tasks')::int FROM audit_events WHERE request_id = $1::uuid AND event_type = 'status.completed'"
    assert await pool.fetchval(ran, overridden) == 0
    assert await pool.fetchval(ran, stopped) == len(packs[stopped]["plan"]["tasks"]) > 0
