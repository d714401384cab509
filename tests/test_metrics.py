"""Metrics an operator alerts on (docs/observability.md), read as Prometheus reads them.

A subject's erasure runs through the real stack (the demo systems, OpenDSR over loopback, the
API over HTTP, a worker whose client publishes the Temporal SDK's metrics); then the API's
/metrics is read with and without credentials and the worker's metrics port without, and the
counters must have moved, the SDK's families must be there, and no label may carry personal data.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dsrflow.infra.metrics import _label
from dsrflow.infra.temporal_client import connect_client
from dsrflow.settings import Settings
from policy.model import load_policy
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.support import live_client, staff_headers, verification_code, wait_for_letter
from tests.yaml_files import read_yaml
from workers.dsr_worker import build_worker
from workers.metrics_endpoint import serve_worker_metrics, worker_runtime

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
METRICS_TOKEN = "m" * 8 + "0123456789abcdef0123456789abcdef"
SUBJECT = {"email": "grace@example.com", "name": "Grace Hopper"}
# Label names dsrflow uses, and the Temporal SDK's; a new one must be added here, deliberately.
DSRFLOW_LABELS = {"type", "channel", "status", "system", "kind", "error", "purpose", "outcome", "action", "per",
                  "step", "sweep", "le", "role"}
SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:+-]{1,64}")  # `le` values are numbers such as 1e+06, +Inf


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, list], Samples]:
    """The page's families by name, and each sample's value by (sample name, labels)."""
    families = {f.name: f.samples for f in text_string_to_metric_families(text)}
    samples = {(s.name, frozenset(s.labels.items())): s.value for ss in families.values() for s in ss}
    return families, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def stack(postgres, settings, dev_server, tmp_path):
    tuned = settings.model_copy(update={
        "metrics_token": METRICS_TOKEN,
        "rate_submit_per_email": "10000/hour",  # grace is erased by other tests of the session too
        "rate_health_per_ip": "1/hour",  # the second call is refused: a rejection to count
    })
    async with fanout_stack(postgres, tuned, dev_server.client, tmp_path) as running:
        yield running


@pytest.fixture
async def worker_port(stack, pool, dev_server) -> AsyncIterator[int]:
    """A worker as `dsrflow worker` runs it: its client on the runtime publishing the SDK's
    metrics, and dsrflow's metrics port (on a free loopback port here)."""
    runtime, sdk_url = worker_runtime(stack.settings)
    assert runtime is not None and sdk_url is not None
    client = await connect_client(stack.settings, address=dev_server.client.service_client.config.target_host,
                                  runtime=runtime)
    listening = stack.settings.model_copy(update={"worker_metrics_address": "127.0.0.1:0"})
    server = await serve_worker_metrics(listening, pool, sdk_url,
                                        load_policy(stack.settings.policy_path).policy.defaults.timezone)
    assert server is not None
    async with build_worker(client, stack.settings, pool):
        yield server.sockets[0].getsockname()[1]
    server.close()


async def read_api_metrics(http: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, Samples]:
    answer = await http.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text, parse(answer.text)[1]


async def erase_through_the_portal(http: httpx.AsyncClient, mail_sink, dev_server) -> str:
    answer = await http.post("/v1/public/requests", json={"type": "erasure", **SUBJECT})
    assert answer.status_code == 202, answer.text
    rid = answer.json()["id"]
    code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert (await http.post(f"/v1/public/requests/{rid}/verify", json={"code": wrong})).status_code == 400
    assert (await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code})).status_code == 200
    state = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 90)
    assert state["status"] == "completed", state
    await wait_for_letter(mail_sink, rid, "response")
    return rid


def assert_no_personal_data(text: str, rid: str) -> None:
    for secret in (SUBJECT["email"], SUBJECT["name"], rid):
        assert secret.lower() not in text.lower(), f"{secret} appears in the metrics"
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for label, label_value in sample.labels.items():
                if family.name.startswith("dsrflow_"):
                    assert label in DSRFLOW_LABELS, f"{family.name} has a new label {label}"
                assert SAFE_VALUE.fullmatch(label_value), f"{family.name}{{{label}={label_value!r}}}"
                assert "@" not in label_value


def deploy_metric_names() -> set[str]:
    """Every metric the alert rules and the dashboard read, as its family name."""
    rules = read_yaml(DEPLOY / "prometheus/alerts.yml")
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    exprs += re.findall(r'"expr": "((?:[^"\\]|\\.)*)"', (DEPLOY / "grafana/dashboards/dsrflow.json").read_text())
    names = set(re.findall(r"\b((?:dsrflow|temporal|process)_[a-z0-9_]+)", " ".join(exprs)))
    return {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in names}


async def test_an_erasure_moves_the_counters_and_no_label_names_the_subject(stack, pool, dev_server, mail_sink,
                                                                              worker_port):
    admin = await staff_headers(pool, "admin")
    async with api(stack) as http:
        _, before = await read_api_metrics(http, admin)
        rid = await erase_through_the_portal(http, mail_sink, dev_server)
        statuses = [(await http.get("/healthz")).status_code for _ in range(2)]
        assert 429 in statuses

        # Who may read the API's /metrics: the metrics token or an admin, nobody else.
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40})).status_code == 401
        for role in ("agent", "compliance"):
            assert (await http.get("/metrics", headers=await staff_headers(pool, role))).status_code == 403
        await read_api_metrics(http, admin)
        api_text, after = await read_api_metrics(http, {"Authorization": f"Bearer {METRICS_TOKEN}"})

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("dsrflow_requests_opened_total", type="erasure", channel="web") >= 1
    assert moved("dsrflow_verification_outcomes_total", outcome="failed") >= 1
    assert moved("dsrflow_verification_outcomes_total", outcome="succeeded") >= 1
    assert moved("dsrflow_rate_limit_rejections_total", action="health", per="ip") >= 1
    for purpose in ("verification", "response"):
        assert moved("dsrflow_letters_sent_total", purpose=purpose) >= 1, purpose
    for system, kind in (("crm", "sql"), ("billing", "sql"), ("email_marketing", "opendsr")):
        assert moved("dsrflow_connector_calls_total", system=system, kind=kind) >= 1, system
    # The gauges computed from Postgres (the API's, read before the erasure, are cached for 15 s).
    assert value(after, "dsrflow_database_up") == 1
    for gauge in ("dsrflow_requests_overdue", "dsrflow_requests_due_within_7_days"):
        assert (gauge, frozenset()) in after

    # A workflow whose task fails (a type this worker does not know, as a workflow code change
    # without a patch fails on replay): DsrWorkflowTaskFailing's counter appears.
    stuck = await dev_server.client.start_workflow("NoSuchWorkflow", id=f"stuck-{rid}", task_queue=stack.settings.task_queue)
    # The worker's port: no credentials (its bind address decides who reads it), dsrflow's
    # metrics and the Temporal SDK's on one page, no family twice.
    async with live_client(base_url=f"http://127.0.0.1:{worker_port}", timeout=30) as raw:
        for _ in range(100):
            page = await raw.get("/metrics")
            # The failing task's counter, with a workflow-task poll out at that moment: the gauge
            # counts the polls open as the page is read, and a busy worker may have none for an instant.
            if "temporal_workflow_task_execution_failed" in page.text and _polling(page.text, stack.settings.task_queue):
                break
            await asyncio.sleep(0.1)
        await stuck.terminate("test over")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
        assert (await raw.get("/")).status_code == 404
        assert (await raw.post("/metrics")).status_code == 405
    worker_text = page.text
    types = re.findall(r"^# TYPE (\S+)", worker_text, re.M)
    assert len(types) == len(set(types)), "a family appears twice on the worker's page"
    families, samples = parse(worker_text)
    queue = stack.settings.task_queue
    assert _polling(worker_text, queue)
    assert any(s.labels.get("activity_type") == "run_system_action"
               for s in families["temporal_activity_execution_latency_seconds"])
    for sdk in ("temporal_workflow_task_schedule_to_start_latency_seconds", "temporal_sticky_cache_size",
                "temporal_activity_schedule_to_start_latency_seconds"):
        assert sdk in families, sdk
    assert "dsrflow_letters_sent" in families
    assert value(samples, "dsrflow_database_up") == 1
    assert value(samples, "dsrflow_requests", status="completed") >= 1  # first read: after the erasure

    # Everything the alerts and the dashboard read exists (a failed activity's counter appears
    # only once one has failed).
    exported = {f.name for f in text_string_to_metric_families(api_text + worker_text)}
    assert deploy_metric_names() - exported <= {"temporal_activity_execution_failed"}

    for text in (api_text, worker_text):
        assert_no_personal_data(text, rid)


def test_label_values_that_could_be_personal_data_become_other():
    assert _label("ada@example.com") == "other"
    assert _label("Ada Lovelace") == "other"
    assert _label("3f2b8c1e-9a4d-4f6b-8e2a-1c3d5e7f9a0b") == "other"
    assert _label("email_marketing") == "email_marketing"
    assert _label("needs_attention") == "needs_attention"


def test_the_worker_metrics_port_is_on_loopback_unless_configured(monkeypatch):
    for variable in ("DSRFLOW_WORKER_METRICS_ADDRESS", "DSRFLOW_METRICS_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    assert Settings().worker_metrics_address == "127.0.0.1:9464"
    assert Settings().metrics_token is None
    monkeypatch.setenv("DSRFLOW_WORKER_METRICS_ADDRESS", "off")
    assert worker_runtime(Settings()) == (None, None)


async def test_a_taken_metrics_port_does_not_stop_the_worker(settings, pool):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        server = await serve_worker_metrics(settings.model_copy(update={"worker_metrics_address": address}),
                                            pool, None, "Europe/Brussels")
    assert server is None  # logged; the worker carries on and Prometheus reports the target down


def _polling(page: str, queue: str) -> bool:
    """Whether the worker's page shows a workflow-task poll open on `queue`."""
    families, _ = parse(page)
    return any(s.value >= 1 and s.labels.get("poller_type") == "workflow_task" and s.labels.get("task_queue") == queue
               for s in families.get("temporal_num_pollers", []))
