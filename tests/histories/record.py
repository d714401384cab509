"""Record the histories that tests/test_replay.py replays.

    .venv/bin/python -m tests.histories.record [--again]

Writes the histories that are missing (`--again`: all of them). Starts its own embedded PostgreSQL, SMTP sink and Temporal dev server (nothing else needs to run),
drives real requests through the real API and worker (those staff decide at a gate:
tests/histories/staff_decisions.py), and writes each workflow's history to
`tests/histories/<name>.json`. Payloads are encrypted with the TEST-ONLY key in
`tests/histories/test-key`. Re-record only on purpose: a history that no longer replays means the
workflow change would break requests already running in production.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import yaml
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from devstack.postgres import EmbeddedPostgres
from devstack.processes import find_binary, free_port
from devstack.smtp_sink import MailSink
from dsrflow.infra.db import create_pool
from dsrflow.infra.logging import configure_logging
from dsrflow.infra.migrate import migrate
from dsrflow.infra.temporal_client import build_data_converter
from dsrflow.settings import Settings
from schemas.workflow import PackageInfo, Plan, task_workflow_id
from tests.fanout_stack import fanout_stack
from tests.histories import DIRECTORY, KEYS, key_line
from tests.histories.staff_decisions import (
    history_of,
    record_approved_access,
    record_approved_attested_erasure,
    record_cancelled_by_staff,
    record_objection_decided,
    record_restriction_lifted,
    record_task_retried_and_resolved,
)
from tests.refused_requests import stored_refusal
from tests.support import api_client, staff_headers, text_of, wait_for_letter
from workers.dsr_worker import activity_context, build_activities, build_worker
from workflows.dsr import DataSubjectRequestWorkflow
from workflows.search_attributes import SEARCH_ATTRIBUTES

TASK_QUEUE = "dsr-record"
_CODE = re.compile(r"enter:\s*\n\s*(\d{6,10})\s*\n")


class PlanGate:
    """Holds `build_package` of chosen requests until released, then runs the real activity.

    A fan-out takes a while in production; holding it lets a staff update (the extension) arrive
    while the request is in progress, deterministically. The recorded history is the one a slow
    real fan-out would produce.
    """

    def __init__(self, real: Callable[[Plan], Awaitable[PackageInfo]]) -> None:
        self.real = real
        self.entered: dict[str, asyncio.Event] = {}
        self.release: dict[str, asyncio.Event] = {}

    def hold(self, request_id: str) -> None:
        self.entered[request_id] = asyncio.Event()
        self.release[request_id] = asyncio.Event()

    def activity(self):
        @activity.defn(name="build_package")
        async def build_package(plan: Plan) -> PackageInfo:
            if plan.request_id in self.release:
                self.entered[plan.request_id].set()
                await self.release[plan.request_id].wait()
            return await self.real(plan)

        return build_package


async def _task_history(client: Client, request_id: str, system: str, action: str, attempt: int = 1) -> str:
    """A SystemTaskWorkflow's history (a child of the request's workflow)."""
    handle = client.get_workflow_handle(task_workflow_id(request_id, system, action, attempt))
    await handle.result()
    return (await handle.fetch_history()).to_json()


async def record_attested_erasure(http: httpx.AsyncClient, pool: asyncpg.Pool, sink: MailSink,
                                  client: Client) -> str:
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "erasure", "subject": {"email": "grace@example.com"},
        "identity_attested": True})
    r.raise_for_status()
    rid = r.json()["id"]
    await wait_for_letter(sink, rid, "response")
    return await history_of(client, rid)


async def record_lgpd_simplified_confirmation(http: httpx.AsyncClient, pool: asyncpg.Pool, sink: MailSink,
                                             client: Client) -> str:
    """An LGPD access request asking for the simplified confirmation (Art. 19, I): its own systems
    read and the letter sent once the identity is verified (workflows/dsr.py SIMPLIFIED_CONFIRMATION)."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "regime": "lgpd", "subject": {"email": "ada@example.com"}, "simplified_confirmation": True})
    r.raise_for_status()
    rid = r.json()["id"]
    code = _CODE.search(text_of(await wait_for_letter(sink, rid, "verification")))
    assert code, "no code in the verification letter"
    (await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code.group(1)})).raise_for_status()
    await wait_for_letter(sink, rid, "simplified_confirmation")
    await wait_for_letter(sink, rid, "response")
    return await history_of(client, rid)


async def record_verified_access_extended(http: httpx.AsyncClient, pool: asyncpg.Pool, sink: MailSink,
                                          client: Client, gate: PlanGate) -> str:
    r = await http.post("/v1/public/requests", json={"type": "access", "email": "ada@example.com"})
    assert r.status_code == 202, r.text
    rid = r.json()["id"]
    gate.hold(rid)
    letter = await wait_for_letter(sink, rid, "verification")
    match = _CODE.search(text_of(letter))
    assert match, "no code in the verification letter"
    code = match.group(1)
    wrong = f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"

    r = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": wrong})
    assert 400 <= r.status_code < 500 and r.json().get("locked") is False, r.text
    r = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code})
    assert r.status_code == 200, r.text

    await asyncio.wait_for(gate.entered[rid].wait(), 30)
    r = await http.post(f"/v1/requests/{rid}/extend", headers=await staff_headers(pool, "compliance"),
                        json={"reason": "The request covers several systems and years of records"})
    assert r.status_code == 200, r.text
    await wait_for_letter(sink, rid, "extension")
    gate.release[rid].set()
    await wait_for_letter(sink, rid, "response")
    return await history_of(client, rid)


async def record_appeals_decided_once(http: httpx.AsyncClient, pool: asyncpg.Pool, sink: MailSink, client: Client,
                                      settings: Settings) -> tuple[str, str]:
    """Two appeals of one refused erasure, both awaiting confirmation: the first confirmed is
    decided (answered); the second, confirmed after, is closed for it (workflows/appeal_claim.py)."""
    refused = await stored_refusal(pool, settings, "virginia@example.com", "vcdpa", type="erasure")
    appeals = []
    for _ in range(2):
        r = await http.post("/v1/public/requests", json={"type": "erasure", "email": "virginia@example.com",
                                                         "appeal_of": refused})
        assert r.status_code == 202, r.text
        appeals.append(r.json()["id"])
    for rid in appeals:
        match = _CODE.search(text_of(await wait_for_letter(sink, rid, "verification")))
        assert match, "no code in the verification letter"
        r = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": match.group(1)})
        assert r.status_code == 200, r.text
        await wait_for_letter(sink, rid, "response" if rid == appeals[0] else "cancellation", 60)
    closed = client.get_workflow_handle_for(DataSubjectRequestWorkflow.run, f"dsr-{appeals[1]}")
    assert (await closed.result()).status == "cancelled"
    return await history_of(client, appeals[0]), (await closed.fetch_history()).to_json()


async def record_access_with_processor_export(http: httpx.AsyncClient, pool: asyncpg.Pool, sink: MailSink,
                                             client: Client) -> str:
    """An access request with a processor without an API: asked for its export, which it uploads
    on its link's page before the package is built (workflows/processor_exports.py)."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "subject": {"email": "ada@example.com"}, "identity_attested": True})
    r.raise_for_status()
    rid = r.json()["id"]
    asked = text_of(await wait_for_letter(sink, rid, "processor_request", 60))
    link = re.search(r"/v1/callbacks/manual/[0-9a-f]{64}", asked)
    assert link, "no upload link in the processor's e-mail"
    r = await http.post(link.group(0), files=[("files", ("answers.csv", b"question,answer\nq1,yes\n", "text/csv"))])
    assert r.status_code == 200, r.text
    return await history_of(client, rid)


def approval_policy(settings: Settings, home: Path) -> Settings:
    content = yaml.safe_load(Path(settings.policy_path).read_text())
    content["approval_required_for"] = ["access", "attested_erasure"]
    path = home / "approval-policy.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return settings.model_copy(update={"policy_path": path})


async def main() -> int:
    configure_logging(environment="development", level="warning")
    with tempfile.TemporaryDirectory(prefix="dsrflow-record-") as tmp:
        home = Path(tmp)
        pg = EmbeddedPostgres(home / "pg", free_port())
        pg.start(home / "postgres.log")
        sink = MailSink(home / "mail", free_port())
        env: WorkflowEnvironment | None = None
        pool: asyncpg.Pool | None = None
        try:
            await pg.wait_ready()
            await pg.ensure_database("dsrflow")
            url = pg.url("dsrflow")
            await migrate(url)
            sink.start()
            settings = Settings(
                DSRFLOW_HOME=home, DSRFLOW_DATABASE_URL=url, SMTP_HOST="127.0.0.1",
                SMTP_PORT=sink.port, DSRFLOW_PUBLIC_URL="http://127.0.0.1:8000",
                DSRFLOW_ENCRYPTION_KEYS=key_line(), DSRFLOW_TASK_QUEUE=TASK_QUEUE,
            )
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=str(find_binary("temporal")),
                data_converter=build_data_converter(KEYS),
                search_attributes=SEARCH_ATTRIBUTES,
            )
            pool = await create_pool(url, min_size=1, max_size=10)
            histories: dict[str, str] = {}
            # The real fan-out, against the demo systems, so replay covers it too.
            async with fanout_stack(pg, settings, env.client, home) as stack:
                settings = stack.settings.model_copy(update={"task_queue": TASK_QUEUE})
                real = next(a for a in build_activities(activity_context(settings, pool))
                            if a.__temporal_activity_definition.name == "build_package")
                gate = PlanGate(real)
                async with build_worker(env.client, settings, pool, task_queue=TASK_QUEUE,
                                        activity_overrides=[gate.activity()]), \
                        api_client(settings, env.client, TASK_QUEUE) as http:
                    histories["attested_erasure"] = await record_attested_erasure(
                        http, pool, sink, env.client)
                    histories["verified_access_extended"] = await record_verified_access_extended(
                        http, pool, sink, env.client, gate)
                    histories["objection_decided"] = await record_objection_decided(http, pool, env.client)
                    histories["lgpd_simplified_confirmation"] = await record_lgpd_simplified_confirmation(
                        http, pool, sink, env.client)
                    histories["task_retried_and_resolved"] = await record_task_retried_and_resolved(
                        http, pool, env.client)
                    histories["cancelled_by_staff"] = await record_cancelled_by_staff(http, pool, sink, env.client)
                    histories["restriction_lifted"] = await record_restriction_lifted(http, pool, env.client)
                    histories["appeal_decided"], histories["appeal_closed_for_another"] = \
                        await record_appeals_decided_once(http, pool, sink, env.client, settings)
                    erasure_id = re.search(r'"workflowId": "dsr-([0-9a-f-]{36})-', histories["attested_erasure"])
                    assert erasure_id, "no request id in the erasure's history"
                    histories["system_task_erasure_email_marketing"] = await _task_history(
                        env.client, erasure_id.group(1), "email_marketing", "erase")
                # The same stack, with the policy's approval gate for access requests.
                gated = approval_policy(settings, home)
                async with build_worker(env.client, gated, pool, task_queue=TASK_QUEUE), \
                        api_client(gated, env.client, TASK_QUEUE) as http:
                    histories["approved_access"] = await record_approved_access(http, pool, env.client)
                    histories["approved_attested_erasure"] = await record_approved_attested_erasure(
                        http, pool, sink, env.client)
            # The survey provider, reached only by e-mail, in an access request.
            os.environ.setdefault("DSRFLOW_SURVEYS_PRIVACY_EMAIL", "privacy@surveys.example")
            async with fanout_stack(pg, settings, env.client, home, keep_manual=("surveys",)) as manual:
                by_email = manual.settings.model_copy(update={"task_queue": TASK_QUEUE})
                async with build_worker(env.client, by_email, pool, task_queue=TASK_QUEUE), \
                        api_client(by_email, env.client, TASK_QUEUE) as http:
                    histories["access_with_processor_export"] = await record_access_with_processor_export(
                        http, pool, sink, env.client)
            for name, text in histories.items():
                path = DIRECTORY / f"{name}.json"
                if path.exists() and "--again" not in sys.argv:
                    # An old history is the point: it proves today's code replays what ran before.
                    print(f"kept {path.name} (pass --again to record it anew)")
                    continue
                path.write_text(text + ("" if text.endswith("\n") else "\n"))
                print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
            return 0
        finally:
            if pool is not None:
                await pool.close()
            if env is not None:
                await env.shutdown()
            sink.stop()
            pg.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
