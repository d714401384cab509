"""A SaaS erasure waiting for its daily quota's renewal (workflows/system_task.py `_unreached`,
patch http-quota-waits), its worker killed (SIGKILL, a real process) twice: while the wait's timer
is pending, and in the try right after the renewal, just after its first delete went out. The task
still resumes by itself after the renewal, each membership is deleted once in effect (the delete
whose answer the killed try never heard is sent again: Mailchimp's 404 counts as its effect), and
the record, the evidence pack and the response letter say every membership deleted, once.

The Mailchimp stand-in answers the run's second delete with Google's 429 `dailyLimitExceeded` until
the test clears it; a whole request's stack on the time-skipping server (the hours to the renewal
pass in seconds); the workers that die are processes of their own (tests/worker_process.py: no
sticky queue, so that the workflow's next task goes to the next worker at once)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta

from temporalio.service import RPCError

from devstack.saas.mailchimp import subscriber_hash
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.process_support import died, dsrflow_process, released
from tests.saas_runs_support import deletes, mailchimp, newsletter
from tests.support import letters_for, staff_headers, text_of
from tests.test_saas_outage_carry_on import LISTS, _task
from tests.test_saas_quota_carry_on import NOTE, _erasure, _sent_for
from workers.dsr_worker import build_worker


async def test_a_quota_wait_survives_a_worker_killed_in_its_timer_and_in_the_try_after_the_renewal(
        postgres, settings, pool, time_skipping, tmp_path, monkeypatch, mail_sink):
    env = time_skipping
    for log in ("waiting", "renewed"):
        (tmp_path / log).mkdir()
    async with mailchimp(monkeypatch) as app:
        config = newsletter()
        config["config"]["retry"] = {"attempts": 1, "backoff_seconds": 0}
        async with fanout_stack(postgres, settings, env.client, tmp_path,
                                extra_systems={"newsletter": config}) as stack, api(stack) as http:
            # Both started now, so that their imports overlap the first run: the first works at
            # once; the second, dying after the first delete of a try, waits for its turn.
            async with dsrflow_process("worker", stack.settings, env.client, tmp_path / "waiting", failpoints="",
                                       module="tests.worker_process", held=True) as waiting, \
                    dsrflow_process("worker", stack.settings, env.client, tmp_path / "renewed",
                                    failpoints="http-effect-sent~newsletter#1", module="tests.worker_process",
                                    held=True) as renewed:
                released(waiting)
                rid, email = await _erasure(app, http, pool, "quota-killed")
                noted = await _task(pool, rid, lambda r: r["message"] is not None, env)
                note = NOTE.fullmatch(noted["message"] or "")
                assert noted["status"] == "pending" and note is not None, noted
                assert deletes(app).count(204) == 1, deletes(app)
                waiting.kill()  # the wait's timer pending
                await died(waiting, tmp_path / "waiting")
                app.state.standin.faults.clear()  # the quota back at the service
                sent = _sent_for(app, email)
                released(renewed)
                renewal = datetime.strptime(note.group(1), "%Y-%m-%d %H:%M")
                # Nothing is asked before the renewal; the try after it dies at its first delete.
                while (now := (await env.get_current_time()).replace(tzinfo=None)) < renewal:
                    assert _sent_for(app, email) == sent, now
                    with contextlib.suppress(RPCError):  # no skip while the dead worker's tasks time out
                        await env.sleep(min(timedelta(minutes=30), renewal - now))
                    await asyncio.sleep(0.05)
                # On to the try (a minute after the renewal), whose activity in flight then holds time.
                skipping = asyncio.create_task(env.sleep(timedelta(minutes=30)))
                try:
                    await died(renewed, tmp_path / "renewed")
                finally:
                    skipping.cancel()
            assert deletes(app).count(204) == 2, deletes(app)
            async with build_worker(env.client, stack.settings, pool):
                state = await asyncio.wait_for(env.client.get_workflow_handle(workflow_id_for(rid)).result(), 120)
                pack = (await http.get(f"/v1/requests/{rid}/evidence", headers=await staff_headers(pool))).json()

    assert state["status"] == "completed", state
    (result,) = [r for r in state["results"] if r["system"] == "newsletter"]
    assert (result["status"], result["attempt"], result["found"], result["changed"]) == ("done", 1, LISTS, LISTS)
    assert result["datasets"] == {"members": {"found": LISTS, "deleted": LISTS}}, result
    # Each membership deleted once; the delete the second kill left unanswered went again (404).
    deleted = [s.path for s in app.state.standin.requests("POST", "/actions/delete-permanent") if s.status == 204]
    assert len(deleted) == len(set(deleted)) == LISTS and deletes(app).count(404) == 1, deletes(app)
    assert not any(subscriber_hash(email) in members for members in app.state.data.members.values())
    task = await pool.fetchrow("SELECT status, found, changed, partial_changed FROM system_tasks "
                               "WHERE request_id = $1 AND system = 'newsletter'", uuid.UUID(rid))
    assert dict(task) == {"status": "done", "found": LISTS, "changed": LISTS, "partial_changed": None}, dict(task)
    (evidence,) = [r for r in pack["results"] if r["system"] == "newsletter"]
    assert (evidence["status"], evidence["changed"], evidence.get("partial_changed")) == ("done", LISTS, None)
    (letter,) = letters_for(mail_sink, rid, "response")
    assert f"- Newsletter: newsletter subscriptions erased ({LISTS} records)" in text_of(letter), text_of(letter)
