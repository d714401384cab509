"""`dsrflow requests stopped` and `dsrflow requests resume` (cli/requests.py) as an operator runs
them: the command as a process of its own, on the test's PostgreSQL and Temporal dev server,
against a request whose workflow a worker ran until it was terminated and the start sweep flagged
it (as tests/test_request_resume.py does over REST)."""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus

from activities.request_start_sweep import flag_ended_workflows
from devstack.processes import free_port
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.request_start import start_request_workflow
from dsrflow.settings import Settings
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from schemas.workflow import workflow_id_for
from tests.conftest import database_pool
from tests.support import eventually, settings_env, unique_email, wait_for_letter
from workers.dsr_worker import activity_context, build_worker
from workflows.dsr import DataSubjectRequestWorkflow

REPO = Path(__file__).resolve().parents[1]


async def requests_cli(settings: Settings, temporal: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`dsrflow requests ...` with these settings and Temporal at `temporal` (host:port)."""
    env = {**os.environ, **settings_env(settings), "TEMPORAL_ADDRESS": temporal}
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "cli.main", "requests", *args],
                                   env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


async def test_bad_arguments_are_named_before_anything_is_reached_and_an_unreachable_temporal_too(settings):
    """Exit 2 for what the operator typed, naming it, before Temporal is asked (nothing answers at
    its address here); once the arguments are good, exit 2 naming Temporal's address."""
    nowhere = f"127.0.0.1:{free_port()}"
    rid = str(uuid.uuid4())
    not_an_id = await requests_cli(settings, nowhere, "resume", "not-a-request", "--reason", "Relay fixed")
    blank = await requests_cli(settings, nowhere, "resume", rid, "--reason", "   ")
    too_long = await requests_cli(settings, nowhere, "resume", rid, "--reason", "x" * 4001)
    unreachable = await requests_cli(settings, nowhere, "resume", rid, "--reason", "Relay fixed")
    assert not_an_id.returncode == 2 and "REQUEST_ID" in not_an_id.stderr and "'not-a-request'" in not_an_id.stderr
    for refused in (blank, too_long):
        assert refused.returncode == 2 and refused.stderr.startswith("error: --reason: "), refused.stderr
        assert len(refused.stderr.splitlines()) == 1
    assert unreachable.returncode == 2 and f"cannot reach Temporal at {nowhere}" in unreachable.stderr
    assert len(unreachable.stderr.splitlines()) == 1 and not unreachable.stdout


async def test_an_operator_lists_a_stopped_request_and_resumes_it_under_their_own_name(
        postgres, settings, dev_server, mail_sink, task_queue):
    """A request waits for its subject's code. Resuming it is refused (exit 1: it runs). Its
    workflow is terminated and the sweep flags it: `stopped` lists it, without the subject;
    `resume` carries it on, audited as `cli:<user>` with the reason, and settles the flag, so
    `stopped` lists nothing again. Its own database: `stopped` lists every stopped request."""
    client = dev_server.client
    temporal = client.service_client.config.target_host
    email = unique_email("cli-stopped")
    async with database_pool(postgres, "cli_requests") as (database_url, pool):
        ours = settings.model_copy(update={"database_url": database_url, "task_queue": task_queue})
        row, _ = await create_request(pool, NewRequest(type="erasure", subject={"email": email}),
                                      loaded_policy=load_policy(ours.policy_path), secret=load_secret_key(ours),
                                      actor="test", idempotency_key=None)
        rid = str(row["id"])
        handle = client.get_workflow_handle(workflow_id_for(rid))
        async with build_worker(client, ours, pool, task_queue=task_queue):
            await start_request_workflow(client, row, 60, task_queue=task_queue, task_timeout=10)
            await wait_for_letter(mail_sink, rid, "verification", 30)
            before = await requests_cli(ours, temporal, "stopped")
            running = await requests_cli(ours, temporal, "resume", rid, "--reason", "Relay fixed")
            await handle.terminate("by mistake")
            ctx = activity_context(ours, pool)

            async def flagged() -> bool:  # the server's list of ended runs catches up within a second or so
                return await flag_ended_workflows(ctx, client, older_than=timedelta(0)) == 1

            await eventually(flagged, 20)
            listed = await requests_cli(ours, temporal, "stopped")
            due = await pool.fetchval("SELECT current_due_date FROM dsr_requests WHERE id = $1", row["id"])
            resumed = await requests_cli(ours, temporal, "resume", rid, "--reason", "Terminated by mistake")
            described = await handle.describe()
            state = await handle.query(DataSubjectRequestWorkflow.state)
            after = await requests_cli(ours, temporal, "stopped")
            audited = await pool.fetch("SELECT actor, data FROM audit_events WHERE request_id = $1 "
                                       "AND event_type = 'request.resumed'", row["id"])
            flag = await pool.fetchrow("SELECT resolved_at, resolution FROM step_troubles WHERE request_id = $1",
                                       row["id"])
            await handle.terminate("test over")
    assert before.returncode == 0 and before.stdout == "no stopped request\n", before.stderr
    assert running.returncode == 1, running.stderr
    assert running.stderr == "error: the request's workflow is running: there is nothing to resume\n"

    assert listed.returncode == 0, listed.stderr
    line, = listed.stdout.splitlines()
    assert due is not None  # registered before it stopped: its deadline runs on
    assert re.fullmatch(rf"{rid}  \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00  due {due.isoformat()}  the request's "
                        r"workflow terminated while the request was open; .*", line), line
    assert email not in listed.stdout and "@" not in listed.stdout

    assert resumed.returncode == 0, resumed.stderr
    shown = re.fullmatch(rf"resumed {rid}: the terminated run carries on from workflow task \d+ "
                         r"\(new run ([0-9a-f-]+)\)\n", resumed.stdout)
    assert shown and shown.group(1) == described.run_id, resumed.stdout
    assert described.status == WorkflowExecutionStatus.RUNNING and state.status == "awaiting_verification"
    actor = f"cli:{getpass.getuser()}"
    assert [(a["actor"], a["data"]["reason"]) for a in audited] == [(actor, "Terminated by mistake")]
    assert flag["resolved_at"] is not None and flag["resolution"] == f"resumed by {actor}"
    assert after.returncode == 0 and after.stdout == "no stopped request\n", after.stdout
