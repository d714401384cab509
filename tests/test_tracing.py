"""Traces across the pipeline (docs/observability.md): one erasure's trace runs from the POST
through the workflow, each activity, each connector call and each SQL statement and HTTP call,
and no span carries the subject's address or name.

The spans go to an in-memory exporter through the same pipeline production uses (our provider,
the scrubbing exporter, the instrumentations and Temporal's interceptor), set up and torn down
around the test, so the rest of the session runs untraced.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from dsrflow.infra.logging import REDACTED
from dsrflow.infra.span_scrubbing import ScrubbingExporter
from dsrflow.infra.temporal_client import connect_client
from dsrflow.infra.tracing import setup_tracing, shutdown_tracing
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.support import staff_headers
from workers.dsr_worker import build_worker

SUBJECT = {"email": "grace@example.com", "name": "Grace Hopper"}


@pytest.fixture
def spans(settings) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert setup_tracing(settings, "dsrflow-tests", exporter=exporter)
    try:
        yield exporter
    finally:
        shutdown_tracing()


def text_of(span: ReadableSpan) -> str:
    """Everything a span would send to a collector, as text."""
    return json.dumps({
        "name": span.name, "attributes": dict(span.attributes or {}), "status": span.status.description,
        "events": [(e.name, dict(e.attributes or {})) for e in span.events],
        "resource": dict(span.resource.attributes),
    }, default=str)


def ancestor_ids(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[int]:
    ids = []
    while span.parent is not None and span.parent.span_id in by_id:
        ids.append(span.parent.span_id)
        span = by_id[span.parent.span_id]
    return ids


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """The names of the span's ancestors, nearest first."""
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_one_erasure_is_one_trace_from_the_post_to_each_sql_statement(spans, postgres, settings, pool,
                                                                           dev_server):
    target = dev_server.client.service_client.config.target_host
    client = await connect_client(settings, address=target)  # with the tracing interceptor now
    async with fanout_stack(postgres, settings, client, settings.home) as stack, \
            build_worker(client, stack.settings, pool), api(stack) as http:
        answer = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                                 json={"type": "erasure", "identity_attested": True, "subject": SUBJECT})
        assert answer.status_code == 201, answer.text
        rid = answer.json()["id"]
        state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 90)
        assert state["status"] == "completed", state
        await asyncio.sleep(0.5)  # the last activity's span ends just after the workflow learns its result

    finished = spans.get_finished_spans()
    post = next(s for s in finished if s.name == "POST /v1/requests" and s.kind is SpanKind.SERVER)
    trace = [s for s in finished if s.context.trace_id == post.context.trace_id]
    by_id = {s.context.span_id: s for s in trace}
    # Temporal's interceptor ends workflow spans at once (replay-safe), so RunWorkflow is a leaf:
    # what a workflow schedules hangs from the span that started it, StartWorkflow here.
    top = ["StartWorkflow:DataSubjectRequestWorkflow", "POST /v1/requests"]

    # The workflow was started under the POST, and its activities ran under that start.
    start = next(s for s in trace if s.name == "StartWorkflow:DataSubjectRequestWorkflow")
    assert start.parent.span_id == post.context.span_id
    assert start.attributes["temporalWorkflowID"] == workflow_id_for(rid)
    workflow = next(s for s in trace if s.name == "RunWorkflow:DataSubjectRequestWorkflow")
    assert workflow.parent.span_id == start.context.span_id
    for activity in ("prepare_request", "plan_request", "send_letter"):
        run = next(s for s in trace if s.name == f"RunActivity:{activity}")
        assert ancestors(run, by_id)[:3] == [f"StartActivity:{activity}", *top], activity

    # Each system's connector call ran inside its activity, and its SQL statements or HTTP calls
    # inside the connector call.
    connectors = {s.attributes["dsrflow.system"]: s for s in trace if s.name.startswith("connector ")
                  and "RunActivity:run_system_action" in ancestors(s, by_id)}
    assert set(connectors) == {"crm", "analytics", "billing", "email_marketing"}
    for system, connector in connectors.items():
        chain = ancestors(connector, by_id)
        # A sql system's task is an activity of the request's workflow; a processor's, of a child.
        via = [] if connector.attributes["dsrflow.kind"] == "sql" else ["StartChildWorkflow:SystemTaskWorkflow"]
        assert chain[:2] == ["RunActivity:run_system_action", "StartActivity:run_system_action"], (system, chain)
        assert chain[2:][:len(via) + 2] == [*via, *top], (system, chain)
        below = [s for s in trace if connector.context.span_id in ancestor_ids(s, by_id)]
        if connector.attributes["dsrflow.kind"] == "sql":  # the system's own database
            statements = [s.attributes["db.statement"] for s in below if "db.statement" in (s.attributes or {})]
            assert statements, system
            if system == "crm":
                assert any(sql.lstrip().startswith("DELETE") for sql in statements), statements
        else:  # OpenDSR over HTTP
            assert any(s.kind is SpanKind.CLIENT and str(s.attributes.get("http.url", "")).startswith(
                stack.email_url.split("/opendsr")[0]) for s in below), system

    # dsrflow's own statements are in the trace too: storing the request, computing its deadlines.
    prepare = next(s for s in trace if s.name == "RunActivity:prepare_request")
    # (The deadlines' update goes with its audit event, in one statement: dsrflow/infra/writes.py.)
    for parent, write in ((post, "INSERT INTO dsr_requests"), (prepare, "UPDATE dsr_requests SET due_date")):
        assert any(s.parent is not None and s.parent.span_id == parent.context.span_id
                   and write in " ".join(s.attributes.get("db.statement", "").split()) for s in trace), parent.name

    # No personal data anywhere, in any trace: not the address, not the name; statements
    # without their parameters; no caller's IP or query string; and nothing had to be redacted
    # (the scrubbing exporter is the net, not the design).
    for span in finished:
        text = text_of(span).lower()
        for value in (SUBJECT["email"], SUBJECT["name"].lower(), "grace"):
            assert value not in text, f"{value} in {span.name}: {text}"
        assert REDACTED not in text, f"{span.name} needed redacting: {text}"
        attributes = span.attributes or {}
        assert not any(key.startswith("db.statement.parameters") for key in attributes), span.name
        if span.kind is SpanKind.SERVER:
            assert "net.peer.ip" not in attributes and "client.address" not in attributes, span.name
        for key in ("http.url", "url.full", "http.target"):
            assert "?" not in str(attributes.get(key, "")), (span.name, attributes[key])


def test_the_scrubbing_exporter_keeps_tokens_addresses_and_callers_out():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingExporter(exporter)))
    tracer = provider.get_tracer("test")
    token = "ab" * 32
    with tracer.start_as_current_span("GET /v1/public/packages/{token}", kind=SpanKind.SERVER, attributes={
        "http.route": "/v1/public/packages/{token}", "http.target": f"/v1/public/packages/{token}?x=1",
        "http.url": f"http://privacy.example.com/v1/public/packages/{token}", "net.peer.ip": "203.0.113.9",
        "http.user_agent": "Mozilla/5.0", "http.status_code": 200,
    }):
        pass
    with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes={
        "http.url": "https://user:pw@api.stripe.test/v1/customers?email=ada%40example.com",
        "db.statement": "SELECT 1 -- for ada@example.com",
    }) as failing:
        failing.record_exception(ValueError("no customer ada@example.com"))
    server, client = exporter.get_finished_spans()
    assert server.attributes["http.target"] == "/v1/public/packages/{token}"
    assert server.attributes["http.url"] == "http://privacy.example.com/v1/public/packages/{token}"
    assert "net.peer.ip" not in server.attributes and "http.user_agent" not in server.attributes
    assert server.attributes["http.status_code"] == 200
    assert client.attributes["http.url"] == "https://api.stripe.test/v1/customers"
    assert "ada@example.com" not in text_of(client) and REDACTED in client.attributes["db.statement"]
    assert "ada@example.com" not in json.dumps([dict(e.attributes) for e in client.events])


def test_a_process_that_traces_nothing_loads_no_sdk():
    """Without OTEL_EXPORTER_OTLP_ENDPOINT a worker or an API does not import the OpenTelemetry
    SDK (30 ms of CPU at each start, dsrflow/infra/tracing.py), only the instrumentation's API."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    probe = ("import sys; from dsrflow.infra.tracing import setup_tracing; from dsrflow.settings import Settings; "
             "print(setup_tracing(Settings(), 'probe'), sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=Path(__file__).resolve().parents[1], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "[]"], result.stdout + result.stderr[-2000:]
