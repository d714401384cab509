"""A processor's answer on record whose task was never told, and a processor that never sends it
again: each window opened by killing a real API process at the line it follows (a failpoint,
dsrflow/infra/failpoints.py), then the worker's start sweep run (activities/request_start_sweep.py,
dsrflow/domain/processor_answers.py). Before, the task learnt of the answer only at its own next
poll, up to six hours away; the first poll comes five minutes after the processor is asked, so a
request that completes within a minute here was told by the sweep. What staff and the subject see:
the request completes, one audit event of each kind, one letter; a task told twice does nothing
twice, and an answer fresher than `DSRFLOW_START_SWEEP_AFTER_MINUTES` (the API telling it now) is
left alone. The evidence says the task learnt the answer late, and how: one
`processor.answer_told_late` per task however many sweeps told it (before, only the worker's log
said "told by the sweep"). Stacks on databases of their own: the sweep takes every row of its database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from activities.request_start_sweep import tell_untold_answers
from api.read_models.event_lines import describe_event
from schemas.request_start import StartSweepInput, StartSweepReport
from schemas.workflow import workflow_id_for
from tests.evidence_pages import readable
from tests.process_support import died
from tests.support import letters_for, settings_env, staff_headers, unique_email
from tests.test_crash_uploads import EXPORT, _asked, _events, _killed_at, _surveys, surveys_asked_by_email
from tests.test_processor_exports import _package
from tests.untrusted_support import PROCESSOR, callback_killed_before_telling
from workers.dsr_worker import activity_context
from workflows.request_start_sweep import RequestStartSweepWorkflow

# Longer ago than the sweep waits before telling a task (DSRFLOW_START_SWEEP_AFTER_MINUTES, 1 here).
LONG_AGO = "UPDATE manual_tasks SET confirmed_at = confirmed_at - interval '2 minutes' WHERE request_id = $1"


@pytest.fixture(scope="module")
async def untold(postgres, settings, dev_server, mail_sink, tmp_path_factory) -> AsyncIterator[dict]:
    """As test_crash_uploads's stack, its worker's sweep waiting one minute before telling a task."""
    async with surveys_asked_by_email(postgres, settings, dev_server.client, tmp_path_factory.mktemp("untold"),
                                      "untold", start_sweep_after_minutes=1) as stack:
        yield stack


async def _sweep(client, stack) -> StartSweepReport:
    """One run of the scheduled sweep's workflow, as its Schedule starts it."""
    report: StartSweepReport = await client.execute_workflow(
        RequestStartSweepWorkflow.run, StartSweepInput(reason="test"), id=f"sweep-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.task_queue)
    return report


async def _told_late(pool, rid) -> list[dict]:
    """The request's records that a sweep told a task its processor's answer."""
    rows = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1 AND event_type = $2",
                            uuid.UUID(str(rid)), "processor.answer_told_late")
    return [row["data"] for row in rows]


async def _completed(client, rid: str) -> dict:
    """The request's workflow's end, within a minute: long before the task's first poll."""
    state: dict = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
    return state


async def test_a_confirmation_killed_before_its_task_is_told_is_told_by_the_sweep_unrepeated(
        untold, dev_server, mail_sink, tmp_path):
    """The processor confirms an erasure, the API dies before telling the task, and the processor
    never comes back. The sweep leaves an answer under a minute old alone (the API may be telling
    it now); once it has been on record longer, the next run tells the task, and the request
    completes: one `processor.confirmed`, one response letter, the task done. Runs after that
    find nothing to tell."""
    client, stack, pool, http = dev_server.client, untold["stack"], untold["pool"], untold["http"]
    rid, path = await _asked(http, pool, mail_sink, "erasure", unique_email("untold"))
    await _killed_at("manual-confirmed~surveys", untold["own"], client, tmp_path, path, data={"note": "Erased."})
    assert await pool.fetchval("SELECT confirmed_at FROM manual_tasks WHERE request_id = $1", rid) is not None

    fresh = await _sweep(client, stack)
    assert fresh.answers_told == 0
    assert (await _surveys(http, pool, rid))["status"] == "pending"

    await pool.execute(LONG_AGO, rid)
    told = await _sweep(client, stack)
    assert told.answers_told == 1
    state = await _completed(client, rid)
    assert state["status"] == "completed", state
    assert (await _surveys(http, pool, rid))["status"] == "done"
    assert await _events(pool, rid, "processor.confirmed") == 1
    assert await _events(pool, rid, "status.completed") == 1
    assert len(letters_for(mail_sink, rid, "response")) == 1
    assert (await _sweep(client, stack)).answers_told == 0
    # On record once (the fresh run, and the run after, wrote nothing), and in the evidence pack.
    (late,) = await _told_late(pool, rid)
    assert (late["system"], late["action"], late["via"], late["status"]) == ("surveys", "erase", "link", "completed")
    assert late["minutes_untold"] >= 2  # it had been on record two minutes (LONG_AGO)
    page = readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=await staff_headers(pool))).text)
    line = (f"Processor's answer passed on to its task late, by the sweep (Survey service provider: its answer on "
            f"its link had waited {late['minutes_untold']} minutes for the task; the API recorded it but did not "
            "tell the task (it stopped, or lost Temporal))")
    assert page.count(line) == 1, page


async def test_an_export_killed_before_its_task_is_told_is_packaged_once_after_the_sweep(
        untold, dev_server, mail_sink, tmp_path):
    """The processor sends its export, the API dies with files, rows and answer on record and the
    task not told, and the processor never comes back: the sweep tells the task, and the subject
    gets one package holding each file once, in one response letter."""
    client, stack, pool, http = dev_server.client, untold["stack"], untold["pool"], untold["http"]
    rid, path = await _asked(http, pool, mail_sink, "access", unique_email("untold-export"))
    await _killed_at("export-kept~surveys", untold["own"], client, tmp_path, path, files=EXPORT)
    assert (await _surveys(http, pool, rid))["status"] == "pending"

    await pool.execute(LONG_AGO, rid)
    assert (await _sweep(client, stack)).answers_told == 1
    state = await _completed(client, rid)
    assert state["status"] == "completed", state
    assert (await _surveys(http, pool, rid))["message"].startswith("Survey service provider sent its export (2 files)")
    _, archive = await _package(http, mail_sink, rid)
    assert sorted(n for n in archive.namelist() if n.startswith("surveys/files/")) == \
        ["surveys/files/answers.csv", "surveys/files/profile.json"]
    assert await _events(pool, rid, "processor.export_received") == 1
    assert len(letters_for(mail_sink, rid, "response")) == 1
    assert [(late["system"], late["action"], late["via"]) for late in await _told_late(pool, rid)] == \
        [("surveys", "access", "link")]


async def test_a_callback_killed_before_its_task_is_told_is_told_by_the_sweep_once_however_often(
        postgres, settings, dev_server, mail_sink, lifecycle_policy, task_queue, tmp_path):
    """An OpenDSR processor's signed "completed" callback (3 records erased) is recorded and the
    API dies before signalling the task; this processor does not send it again, and expects to
    finish in 2099, so the task's first poll is five minutes away. Two sweeps tell the task at
    once: it settles on the callback's own count (the word the API would have sent, not a poll),
    one `processor.callback`, one response letter; a later sweep tells nothing."""
    client = dev_server.client
    async with callback_killed_before_telling(postgres, settings, client, lifecycle_policy, task_queue, tmp_path,
                                              "untold_callback") as killed:
        pool, request_id = killed.pool, killed.request_id
        # The scheduled run waits DSRFLOW_START_SWEEP_AFTER_MINUTES; an audit event cannot be
        # backdated, so the sweep's step is called with no wait, twice at once.
        context = activity_context(killed.settings, pool)
        told = await asyncio.gather(*(tell_untold_answers(context, client, older_than=timedelta(0))
                                      for _ in range(2)))
        state = await _completed(client, request_id)
        after = await tell_untold_answers(context, client, older_than=timedelta(0))
        events = await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1",
                                  uuid.UUID(request_id))
        told_late = await _told_late(pool, request_id)
    assert sorted(told) in ([0, 1], [1, 1])  # the second may come once the task has ended
    assert after == 0
    assert state["status"] == "completed"
    (result,) = state["results"]
    assert (result["system"], result["status"], result["found"], result["changed"]) == (PROCESSOR, "done", 3, 3)
    callbacks = [e["data"] for e in events if e["event_type"] == "processor.callback"]
    assert callbacks == [{"system": PROCESSOR, "status": "completed", "attempt": 1, "results_count": 3}]
    kinds = [e["event_type"] for e in events]
    assert all(kinds.count(kind) == 1 for kind in kinds if not kind.startswith("letter.")), kinds
    # Two sweeps telling the task at once: the record that it learnt the callback late, once.
    (late,) = told_late
    assert (late["system"], late["via"], late["status"], late["attempt"]) == (PROCESSOR, "callback", "completed", 1)
    assert describe_event({"event_type": "processor.answer_told_late", "data": late}, systems={PROCESSOR: "Forged"}) \
        .startswith("Processor's answer passed on to its task late, by the sweep (Forged: its signed callback "
                    "saying completed had waited ")
    assert len(letters_for(mail_sink, request_id, "response")) == 1


# The sweep's step in a process of its own, as the worker runs it (killed at its failpoint).
_SWEEP = """
import asyncio
from datetime import timedelta
from activities.request_start_sweep import tell_untold_answers
from dsrflow.infra.db import create_pool
from dsrflow.infra.temporal_client import connect_client
from dsrflow.settings import load_settings
from workers.dsr_worker import activity_context

async def main():
    settings = load_settings()
    pool = await create_pool(settings.effective_database_url)
    await tell_untold_answers(activity_context(settings, pool), await connect_client(settings), older_than=timedelta(0))

asyncio.run(main())
"""


async def test_a_sweep_killed_after_telling_a_task_leaves_the_record_that_it_did(
        postgres, settings, dev_server, mail_sink, lifecycle_policy, task_queue, tmp_path):
    """The sweep tells the task the callback's answer and its process dies before writing that it
    did: the task itself records it (the same event, once), so the evidence still says how the
    task learnt the answer late. Before, only the dead sweep's log line had said so."""
    client = dev_server.client
    async with callback_killed_before_telling(postgres, settings, client, lifecycle_policy, task_queue, tmp_path,
                                              "untold_sweep_killed") as killed:
        env = {**os.environ, **settings_env(killed.settings), "DSRFLOW_FAILPOINTS": f"sweep-told~{PROCESSOR}",
               "TEMPORAL_ADDRESS": client.service_client.config.target_host}
        with open(tmp_path / "sweep.log", "ab") as log:
            sweep = subprocess.Popen([sys.executable, "-c", _SWEEP], env=env, stdout=log, stderr=subprocess.STDOUT)
        await died(sweep, tmp_path, role="sweep")
        state = await _completed(client, killed.request_id)
        told_late = await _told_late(killed.pool, killed.request_id)
    assert state["status"] == "completed"
    (late,) = told_late
    assert (late["system"], late["via"], late["status"], late["attempt"]) == (PROCESSOR, "callback", "completed", 1)
