"""What each reader is shown of a request whose workflow ended while it was open (the start sweep's
flag: dsrflow/domain/request_resume.py `ended_flag`), over the real app, worker, PostgreSQL and
Temporal dev server: the subject's status and verification pages say it is paused and offer no
code to enter, the REST view says since when it is stopped and why, the listing marks and filters
it, the console's request page says it has stopped and offers no action, its queue row says
"stopped"; once resumed, each shows the request as it stands again."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from activities.request_start_sweep import flag_ended_workflows
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.request_resume import ended_flag, ended_trouble_key
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from schemas.workflow import workflow_id_for
from tests.conftest import database_pool
from tests.support import console_sign_in, served, staff_headers, unique_email, wait_for_letter
from tests.test_request_resume import _until
from workers.dsr_worker import activity_context

PAUSED = "Your request is paused while we put right a problem on our side."
KEPT = "Your request is kept, and its deadline still applies."
PAUSED_CODE = "We cannot take your code just now: your request is paused while we put right a problem on our side."
PAUSED_NL = "Uw verzoek staat even stil terwijl wij een probleem aan onze kant oplossen."
KEPT_NL = "Uw verzoek blijft bewaard en de termijn ervan blijft gelden."
WAITING = "Waiting for you to confirm that the request is yours."


async def test_a_stopped_request_is_paused_for_its_subject_and_stopped_for_staff_until_it_is_resumed(
        postgres, settings, dev_server, mail_sink, task_queue):
    """An operator terminates the workflow of a request awaiting its subject's code, and the start
    sweep flags it. Its own database: the sweep looks at every ended workflow on the server, and
    flags only the requests of the database it is given."""
    client = dev_server.client
    async with database_pool(postgres, "stopped_views") as (database_url, pool):
        ours = settings.model_copy(update={"database_url": database_url})
        async with served(ours, pool, client, task_queue) as http:
            agent, compliance = await staff_headers(pool, "agent"), await staff_headers(pool, "compliance")
            opened = await http.post("/v1/requests", headers=agent, json={
                "type": "erasure", "subject": {"email": unique_email("stopped")}})
            rid = opened.json()["id"]
            verify_link = f'href="/portal/requests/{rid}/verify"'
            await wait_for_letter(mail_sink, rid, "verification")
            running = await http.get(f"/portal/requests/{rid}")
            handle = client.get_workflow_handle(workflow_id_for(rid))
            await handle.terminate("by mistake")
            ctx = activity_context(ours, pool)

            async def flagged() -> bool:  # the server's list of ended runs catches up within a second or so
                return await flag_ended_workflows(ctx, client, older_than=timedelta(0)) == 1

            await _until(flagged, 20)
            flag = await pool.fetchrow("SELECT message, since FROM step_troubles WHERE request_id = $1",
                                       uuid.UUID(rid))
            paused = await http.get(f"/portal/requests/{rid}")
            paused_nl = await http.get(f"/portal/requests/{rid}", headers={"Accept-Language": "nl"})
            verify_paused = await http.get(f"/portal/requests/{rid}/verify")  # the e-mail's link, opened now
            stopped = (await http.get(f"/v1/requests/{rid}", headers=agent)).json()
            listed = (await http.get("/v1/requests", headers=agent, params={"q": rid})).json()["items"]
            only_stopped = (await http.get("/v1/requests", headers=agent, params={"stopped": "true"})).json()["items"]
            not_stopped = (await http.get("/v1/requests", headers=agent, params={"stopped": "false"})).json()["items"]
            await console_sign_in(http, pool, "agent")
            console = await http.get(f"/console/requests/{rid}")
            queue = await http.get("/console/", params={"needs_attention": "true"})

            resumed = await http.post(f"/v1/requests/{rid}/resume", headers=compliance,
                                      json={"reason": "Terminated by mistake during maintenance"})
            again = (await http.get(f"/v1/requests/{rid}", headers=agent)).json()
            carries_on = await http.get(f"/portal/requests/{rid}")
            console_again = await http.get(f"/console/requests/{rid}")
            listed_again = (await http.get("/v1/requests", headers=agent, params={"q": rid})).json()["items"]
            verify_again = await http.get(f"/portal/requests/{rid}/verify")
            await handle.terminate("test over")

    assert WAITING in running.text and verify_link in running.text  # what the stopped page must not offer
    assert paused.status_code == 200 and PAUSED in paused.text and KEPT in paused.text
    assert WAITING not in paused.text and verify_link not in paused.text
    assert "try again" not in paused.text  # nothing on this page to try again
    assert verify_paused.status_code == 200 and PAUSED_CODE in verify_paused.text and KEPT in verify_paused.text
    assert 'name="code"' not in verify_paused.text and "/resend" not in verify_paused.text
    assert paused_nl.status_code == 200 and '<html lang="nl">' in paused_nl.text
    assert PAUSED_NL in paused_nl.text and KEPT_NL in paused_nl.text and verify_link not in paused_nl.text
    assert stopped["status"] == "awaiting_verification"
    assert stopped["stopped"]["message"] == flag["message"] and "terminated" in flag["message"]
    assert datetime.fromisoformat(stopped["stopped"]["since"]) == flag["since"]
    assert console.status_code == 200 and "This request has stopped" in console.text
    # No action the stopped workflow would refuse is offered; once resumed, they are again.
    cancel = f'action="/console/requests/{rid}/cancel"'
    assert cancel not in console.text and "<h2>Actions</h2>" not in console.text
    assert cancel in console_again.text and "This request has stopped" not in console_again.text
    # The queue says so too, over REST and on the console's row.
    assert [(i["id"], i["stopped"], i["needs_attention"]) for i in listed] == [(rid, True, True)]
    assert [i["id"] for i in only_stopped] == [rid] and rid not in [i["id"] for i in not_stopped]
    row = queue.text.split(f'data-request-id="{rid}"')[1].split("</tr>")[0]
    assert '<span class="badge overdue">stopped</span>' in row
    assert [(i["id"], i["stopped"]) for i in listed_again] == [(rid, False)]

    assert resumed.status_code == 200, resumed.text
    assert "stopped" in again and again["stopped"] is None
    assert carries_on.status_code == 200 and PAUSED not in carries_on.text
    assert WAITING in carries_on.text and verify_link in carries_on.text
    assert 'name="code"' in verify_again.text and PAUSED_CODE not in verify_again.text


async def test_a_running_request_is_not_stopped(http, pool, mail_sink):
    agent = await staff_headers(pool, "agent")
    opened = await http.post("/v1/requests", headers=agent, json={
        "type": "erasure", "subject": {"email": unique_email("running")}})
    rid = opened.json()["id"]
    await wait_for_letter(mail_sink, rid, "verification")  # its workflow runs, waiting for the code
    view = (await http.get(f"/v1/requests/{rid}", headers=agent)).json()
    assert view["status"] == "awaiting_verification" and "verification" in view  # its workflow answered
    assert "stopped" in view and view["stopped"] is None


async def test_the_newest_open_flag_of_an_open_request_is_its_stop_and_a_closed_request_has_none(
        postgres, settings):
    """The flags as the sweep writes them (a run's own key): the older one's resume died before
    settling it, the newer is the run that resumed and ended again. A closed request is not
    stopped, whatever flag is left on it. Its own database: the closed request is made by hand."""
    async with database_pool(postgres, "ended_flag") as (_, pool):
        row, _ = await create_request(pool, NewRequest(type="erasure", subject={"email": unique_email("flags")}),
                                      loaded_policy=load_policy(settings.policy_path),
                                      secret=load_secret_key(settings), actor="test", idempotency_key=None)
        rid = str(row["id"])
        assert await ended_flag(pool, rid) is None
        for run, message, ago in (("first", "terminated", 60), ("second", "failed", 1), ("settled", "timed out", 0)):
            await pool.execute(
                """INSERT INTO step_troubles (request_id, trouble_key, step, message, transient, since)
                   VALUES ($1, $2, 'workflow', $3, false, now() - make_interval(mins => $4))""",
                row["id"], ended_trouble_key(run), message, ago)
        await pool.execute("UPDATE step_troubles SET resolved_at = now() WHERE trouble_key = $1",
                           ended_trouble_key("settled"))
        newest = await ended_flag(pool, rid)
        await pool.execute("UPDATE dsr_requests SET closed_at = now() WHERE id = $1", row["id"])
        closed = await ended_flag(pool, rid)
    assert newest is not None and newest["message"] == "failed"
    assert closed is None
