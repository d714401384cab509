"""A restriction withdrawn while a processor asked by e-mail (`manual_email`) has not answered yet:
the restriction goes on record in force where it was reached as soon as the request closes, and
compliance may lift it at once. Before, the workflow followed the processor's task to its end (its
completion timeout, 14 days) before recording anything: meanwhile the console showed no restriction
panel and `lift-restriction` was refused ("not in force").

The processor's task is not on record as restricted (not known to be reached): its link, like any
closed request's own task's, records nothing ("Link expired"), so the close ends the task, not
answered (tests/test_closed_request_asked_tasks.py); the lift reaches every system of the plan, so
the processor is asked to lift too."""

from __future__ import annotations

import re

from temporalio.worker import Replayer

from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.support import console_sign_in, letters_for, staff_headers, text_of
from tests.test_restriction_closed_partway import restriction_opened, withdrawn_in_force
from tests.test_restriction_lifecycle import LIFT, _until, _view
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow
from workflows.system_task import SystemTaskWorkflow

_LINK = re.compile(r"http://\S+(/v1/callbacks/manual/[0-9a-f]{64})")


async def test_a_restriction_withdrawn_while_a_processor_is_asked_is_in_force_and_liftable_at_once(
        postgres, settings, pool, dev_server, tmp_path, mail_sink, monkeypatch):
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", "privacy@surveys.example")
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, keep_manual=("surveys",)) as stack:
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            agent, compliance = await staff_headers(pool, "agent"), await staff_headers(pool, "compliance")
            rid = await restriction_opened(http, agent)

            async def part_way() -> bool:
                tasks = {t["system"]: t["status"] for t in (await _view(http, pool, rid)).get("results", [])}
                return (tasks.get("analytics") == "done" and tasks.get("surveys") == "pending"
                        and bool(letters_for(mail_sink, rid, "processor_request")))

            assert await _until(part_way, 20), await _view(http, pool, rid)
            view = await withdrawn_in_force(http, pool, rid, agent, 10)
            assert "analytics" in view["restriction"]["systems"]
            assert "surveys" not in view["restriction"]["systems"]  # asked, not known to be reached

            async def ended_unanswered() -> bool:
                (surveys,) = [t for t in (await _view(http, pool, rid))["results"] if t["system"] == "surveys"]
                return surveys["status"] == "needs_attention" and "not answered" in surveys["message"]

            assert await _until(ended_unanswered, 10), (await _view(http, pool, rid))["results"]
            await console_sign_in(http, pool, "compliance")
            page = (await http.get(f"/console/requests/{rid}")).text
            assert 'id="restriction"' in page and "Lift the restriction" in page

            # The processor's link for the restriction records nothing on the closed request.
            (mail,) = letters_for(mail_sink, rid, "processor_request")
            (link,) = {m.group(1) for m in _LINK.finditer(text_of(mail))}
            refused = await http.post(link, data={"note": "Restricted in our panel."})
            assert "Link expired" in refused.text, refused.text

            r = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=compliance, json=LIFT)
            assert r.status_code == 200, r.text

            async def lift_asked() -> bool:  # the lift reaches every system: the processor too
                return any("end of a restriction of processing" in m["Subject"]
                           for m in letters_for(mail_sink, rid, "processor_request"))

            assert await _until(lift_asked, 10), [m["Subject"] for m in letters_for(mail_sink, rid)]

            # The new path replays (tests/test_replay.py keeps the stored ones): its history so far.
            history = await dev_server.client.get_workflow_handle(workflow_id_for(rid)).fetch_history()
            replayer = Replayer(workflows=[DataSubjectRequestWorkflow, SystemTaskWorkflow],
                                data_converter=dev_server.client.data_converter)
            result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
            assert result.replay_failure is None, repr(result.replay_failure)
