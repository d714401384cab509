"""The evidence pack of a request closed unverified (the subject never confirmed their identity,
closed when the verification window ended), on a real run: the time-skipping Temporal server runs
the seven days. A closing unverified is a refusal (Art. 12(4)); the pack's Decisions section was an
empty heading, its verification table read `verification.failed`, `email_code` and
`status.closed_unverified`, and its status `closed_unverified`."""

from __future__ import annotations

import re
from datetime import timedelta

from api.auth import create_token
from schemas.workflow import workflow_id_for
from tests.evidence_pages import LOCAL_TIME, assert_reads_as_words, readable, section
from tests.support import api_client, unique_email, wait_for_letter
from workers.dsr_worker import build_worker


async def test_a_request_closed_unverified_reads_as_a_refusal_with_its_letter(
        settings, pool, time_skipping, mail_sink, task_queue):
    env, client = time_skipping, time_skipping.client
    async with build_worker(client, settings, pool, task_queue=task_queue), \
            api_client(settings, client, task_queue) as http:
        compliance = {"Authorization": f"Bearer {await create_token(pool, 'compliance', 'Jane Peeters')}"}
        rid = (await http.post("/v1/public/requests", json={"type": "erasure", "email": unique_email("unv")})).json()["id"]
        await wait_for_letter(mail_sink, rid, "verification")
        wrong = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": "000001"})
        assert wrong.status_code == 400, wrong.text
        await env.sleep(timedelta(days=7, hours=1))  # the codes expire after seven days
        assert (await client.get_workflow_handle(workflow_id_for(rid)).result())["status"] == "closed_unverified"
        await wait_for_letter(mail_sink, rid, "closed_unverified")
        pack = (await http.get(f"/v1/requests/{rid}/evidence", headers=compliance)).json()
        page = (await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text

    refusal = pack["decisions"]["refusal"]
    assert (refusal["kind"], refusal["by"], refusal["letter_on_time"]) == ("closed_unverified", "workflow", True)
    assert refusal["verification_window_ended_at"] and refusal["letter_sent_at"]
    assert pack["verification"]["attempts"][0]["method"] == "email_code"  # the JSON keeps the code

    assert_reads_as_words(page)
    text = readable(page)
    assert "Status closed unverified (identity never confirmed), closed" in text
    verification = section(text, "Identity verification", "Deadlines")
    assert "Verified never: the subject did not confirm their identity" in verification
    assert re.search(f"{LOCAL_TIME} Wrong verification code one-time code from the e-mail to the subject, "
                     "4 attempt\\(s\\) left", verification), verification
    assert "Verification reminder (a new code) sent" in verification
    decisions = section(text, "Decisions", "Plan")
    assert re.search(f"Closed unverified \\(a refusal\\) {LOCAL_TIME}, by the workflow on its own: the subject did "
                     f"not confirm their identity before the verification window ended \\({LOCAL_TIME}\\), after "
                     "2 code\\(s\\) sent by e-mail", decisions), decisions
    assert re.search(f"The closing notice, with the reasons and the remedies \\(complaint to the supervisory "
                     f"authority, judicial remedy\\), went {LOCAL_TIME}, by the due date", decisions), decisions
    assert "Closing notice (identity not verified): Your data protection request has been closed" in text
