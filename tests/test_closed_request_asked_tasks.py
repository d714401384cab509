"""Tasks still running when a request closes unanswered (withdrawn, cancelled, denied).

A processor asked by e-mail (`manual_email`) that had not answered: its link takes no answer once
the request closed, so nothing could end its task but its completion timeout. Before, the task polled
on for those 14 days, the request's workflow followed it, and the request page showed it waiting.
Now the close tells the task, which asks once more and ends, not answered (or with the confirmation
it had recorded before the close), and the request's workflow ends; the processor is told once, by
e-mail, that the request is withdrawn and not to act on it.

A restriction closed part-way goes on record in force where it was reached (workflows/
restriction_lifecycle.py). Before, that record was made once, at the close: a task left running then
that restricted the data afterwards (here the processor's confirmation, recorded as the request
closed, which its task learns of late) was missing from the restriction's systems, its panel and
its evidence, though the closing letter said it would stay in force wherever those asked carry it out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Replayer

from schemas.workflow import ProcessorUpdate, task_workflow_id, workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.support import letters_for, staff_headers, unique_email
from tests.test_restriction_closed_partway import restriction_opened
from tests.test_restriction_lifecycle import LIFT, _until, _view
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow
from workflows.system_task import SystemTaskWorkflow

SURVEYS_CONTACT = "privacy@surveys.example"
WITHDRAWN = {"reason": "The subject withdrew it by phone", "withdrawn_by_subject": True}


@contextlib.asynccontextmanager
async def confirmations_held(url: str, rids: list[str]) -> AsyncIterator[None]:
    """The survey processor's confirmation of each request's restriction, committed only when the
    block ends: until then no poll of their tasks reads it (manual_tasks locked), as if the tasks
    learnt of it late."""
    conn = await asyncpg.connect(url)
    try:
        held = conn.transaction()
        await held.start()
        await conn.execute("LOCK TABLE manual_tasks IN ACCESS EXCLUSIVE MODE")
        await conn.execute("UPDATE manual_tasks SET confirmed_at = now(), confirmation_note = 'Restricted' "
                           "WHERE request_id = ANY($1::uuid[]) AND system = 'surveys'", rids)
        yield
        await held.commit()
    finally:
        await conn.close()


async def tell_restricted(client: Client, rid: str) -> None:
    """Tell the survey processor's restriction task of its confirmation, as the start sweep tells a
    task of an answer the API could not pass on."""
    try:
        await client.get_workflow_handle(task_workflow_id(rid, "surveys", "restrict", 1)).signal(
            "processor_update", ProcessorUpdate(status="completed"))
    except RPCError:
        pass  # the close told it already, and it ended


async def _asked(http, pool, mail_sink, rid: str, others: str) -> bool:
    """Every system but the survey processor has answered (done, not found, or `others`: needing
    staff), and the processor was e-mailed and has not answered."""
    tasks = {t["system"]: t["status"] for t in (await _view(http, pool, rid)).get("results", [])}
    return (tasks.pop("surveys", None) == "pending" and bool(tasks) and set(tasks.values()) <= {"done", "not_found", others}
            and bool(letters_for(mail_sink, rid, "processor_request")))


async def _replays(client, *workflow_ids: str) -> None:
    """The new paths replay (tests/test_replay.py keeps the stored histories)."""
    replayer = Replayer(workflows=[DataSubjectRequestWorkflow, SystemTaskWorkflow], data_converter=client.data_converter)
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, (workflow_id, repr(result.replay_failure))


async def test_a_processor_asked_by_e_mail_ends_unanswered_when_the_request_is_withdrawn(
        postgres, settings, pool, dev_server, tmp_path, mail_sink, monkeypatch):
    """An erasure withdrawn while the survey processor, e-mailed, has not answered: its task ends at
    once, needing no one (the request is closed), saying the processor did not answer before the
    close and that its link takes no answer; no reminder goes; the request's workflow ends."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, keep_manual=("surveys",)) as stack:
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            agent = await staff_headers(pool, "agent")
            r = await http.post("/v1/requests", headers=agent, json={
                "type": "erasure", "subject": {"email": "tracked@example.com"}, "identity_attested": True})
            assert r.status_code == 201, r.text
            rid = str(r.json()["id"])
            assert await _until(lambda: _asked(http, pool, mail_sink, rid, "done"), 20), (await _view(http, pool, rid))["results"]
            r = await http.post(f"/v1/requests/{rid}/cancel", headers=agent, json=WITHDRAWN)
            assert r.status_code == 200, r.text

            # Before, the workflow ran on, its task polling the processor for 14 days.
            handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))
            result = await asyncio.wait_for(handle.result(), 60)  # seconds unloaded; a loaded machine took 20
            assert result["status"] == "cancelled"
            (surveys,) = [t for t in (await _view(http, pool, rid))["results"] if t["system"] == "surveys"]
            assert surveys["status"] == "needs_attention", surveys
            assert surveys["message"].startswith("not answered: the request was closed before Survey service provider "), \
                surveys
            assert "its link takes no answer any more" in surveys["message"]
            assert surveys["message"].endswith("; told by e-mail that the request is withdrawn, not to act on it")
            assert letters_for(mail_sink, rid, "processor_reminder") == []
            # Told once, in reply to the e-mail that asked it, that the request is withdrawn; nothing
            # about the subject but the reference (activities/connectors/manual_email.py `_withdraw`).
            (asked,) = letters_for(mail_sink, rid, "processor_request")
            (withdrawn,) = letters_for(mail_sink, rid, "processor_withdrawal")
            assert SURVEYS_CONTACT in withdrawn["To"] and withdrawn["In-Reply-To"] == asked["Message-ID"]
            said = " ".join(withdrawn.get_body(("plain",)).get_content().split())
            assert "we withdraw our instruction: please do not act on it." in said, said
            assert "tracked@example.com" not in said
            assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1::uuid "
                                       "AND event_type = 'processor.withdrawn'", rid) == 1
            await _replays(dev_server.client, workflow_id_for(rid), task_workflow_id(rid, "surveys", "erase", 1))


async def test_a_restriction_reached_after_its_close_goes_on_record_where_it_reached(
        postgres, settings, pool, dev_server, tmp_path, mail_sink, monkeypatch):
    """Two restrictions withdrawn as the survey processor's confirmation was being recorded (the API
    died before telling the task): the tracked subject's goes on record in force where reached at
    the close (analytics, not the processor: its task had not learnt of the confirmation), and once
    the task does, the processor is on record too, with its event, and the request's view lists it.
    The other subject is in none of our systems: nothing was reached at the close, so nothing went on
    record, and the restriction at the processor stayed restricted with no lift possible; now the
    processor's restriction puts it on record."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, keep_manual=("surveys",)) as stack:
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            agent = await staff_headers(pool, "agent")
            tracked = await restriction_opened(http, agent)
            r = await http.post("/v1/requests", headers=agent, json={
                "type": "restriction", "restriction_grounds": ["needed_for_legal_claims"],
                "subject": {"email": unique_email("nowhere")}, "identity_attested": True})
            assert r.status_code == 201, r.text
            nowhere = str(r.json()["id"])
            for rid in (tracked, nowhere):
                assert await _until(lambda rid=rid: _asked(http, pool, mail_sink, rid, "needs_attention"), 20), \
                    (await _view(http, pool, rid))["results"]
            systems = "SELECT systems FROM restrictions WHERE request_id = $1::uuid"
            # The processor's confirmations, committed only once the close is on record.
            async with confirmations_held(stack.settings.effective_database_url, [tracked, nowhere]):
                for rid in (tracked, nowhere):
                    r = await http.post(f"/v1/requests/{rid}/cancel", headers=agent, json=WITHDRAWN)
                    assert r.status_code == 200, r.text
                on_record = await _until(lambda: pool.fetchval(systems, tracked), 20)
                assert on_record is not None and "analytics" in on_record and "surveys" not in on_record, on_record
                assert await pool.fetchval(systems, nowhere) is None
                for rid in (tracked, nowhere):
                    await tell_restricted(dev_server.client, rid)

            async def on_record_with_surveys(rid: str) -> list[str]:
                view = await _view(http, pool, rid)
                return (view["restriction"] or {}).get("systems") or [] if view["restriction"] and \
                    "surveys" in view["restriction"]["systems"] else []

            assert "analytics" in await _until(lambda: on_record_with_surveys(tracked), 15), await _view(http, pool, tracked)
            assert await _until(lambda: on_record_with_surveys(nowhere), 15) == ["surveys"]
            events = await pool.fetch("SELECT request_id, event_type, data FROM audit_events WHERE request_id = "
                                      "ANY($1::uuid[]) AND event_type LIKE 'restriction.%'", [tracked, nowhere])
            said = {(str(e["request_id"]), e["event_type"], e["data"].get("system")) for e in events}
            assert said == {(tracked, "restriction.in_force", None), (tracked, "restriction.reached", "surveys"),
                            (nowhere, "restriction.in_force", None)}, said
            for rid in (tracked, nowhere):
                view = await _view(http, pool, rid)
                assert view["status"] == "cancelled" and view["restriction"]["status"] == "active"
                (surveys,) = [t for t in view["results"] if t["system"] == "surveys"]
                assert surveys["status"] == "done", surveys
            # The lift is offered on the one nothing had reached at its close.
            r = await http.post(f"/v1/requests/{nowhere}/lift-restriction",
                                headers=await staff_headers(pool, "compliance"), json=LIFT)
            assert r.status_code == 200, r.text
            await _replays(dev_server.client, *(i for rid in (tracked, nowhere) for i in (
                workflow_id_for(rid), task_workflow_id(rid, "surveys", "restrict", 1))))
