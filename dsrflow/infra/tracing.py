"""OpenTelemetry tracing across the pipeline, off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

One request's trace runs from the HTTP call (FastAPI) through `StartWorkflow`, the workflow and
each activity (Temporal's TracingInterceptor, on the client and so on every worker built from
it), each connector call (`span`, from `dsrflow.infra.metrics.connector_call`'s caller), and each
SQL statement (asyncpg) and HTTP call to a processor (httpx) below them.

Spans carry request ids (workflow ids are `dsr-<request id>`) and never personal data:
- span names are route templates, SQL verbs, HTTP methods and Temporal's workflow and activity
  names, so they hold none by construction;
- asyncpg records statements without their parameters (`capture_parameters=False`), which is where
  e-mail addresses and names travel;
- `ScrubbingExporter` (dsrflow/infra/span_scrubbing.py), the last step before a span leaves the
  process, replaces URLs by their route template (server) or their path without the query
  (client: a SaaS API may put an address in the query), drops the client's address and user
  agent from server spans, and runs every string left through the log redactor (e-mails, IBANs,
  phone numbers, DSRFLOW_REDACT_PATTERNS), for what a library adds that we did not foresee (an
  exception message, say).

The provider is ours, passed to each instrumentation, never installed as the global one: tests can
switch tracing on and off again in one process, and no library we did not instrument starts
exporting on its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsrflow.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

__all__ = ["client_interceptors", "instrument_app", "setup_tracing", "shutdown_tracing", "span", "tracing_enabled"]


@dataclass
class _Tracing:
    provider: TracerProvider
    tracer: Tracer


_active: _Tracing | None = None


def tracing_enabled() -> bool:
    return _active is not None


def setup_tracing(settings: Settings, service: str, *, exporter: SpanExporter | None = None) -> bool:
    """Switch tracing on for this process when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, or with
    `exporter` (tests: an in-memory one, exported synchronously). Returns whether it is on."""
    global _active
    if _active is not None:
        return True
    if exporter is None and not settings.otlp_endpoint:
        return False
    # The SDK only once tracing is on: its import is 30 ms of CPU at each start of a worker or an
    # API, most of which trace nothing.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    from dsrflow.infra.span_scrubbing import ScrubbingExporter

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or f"{settings.otlp_endpoint}/v1/traces"
        processor: Any = BatchSpanProcessor(ScrubbingExporter(OTLPSpanExporter(endpoint=endpoint),
                                                              settings.redact_patterns))
    else:
        processor = SimpleSpanProcessor(ScrubbingExporter(exporter, settings.redact_patterns))
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win when set; the sampler follows
    # OTEL_TRACES_SAMPLER (parent-based, always on, by default).
    resource = Resource.create({} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(processor)
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    AsyncPGInstrumentor(capture_parameters=False).instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _active = _Tracing(provider, provider.get_tracer("dsrflow"))
    return True


def shutdown_tracing() -> None:
    """Export what is left and switch the instrumentations off (a CLI process ends with
    os._exit, which skips the provider's own exit hook)."""
    global _active
    if _active is None:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    HTTPXClientInstrumentor().uninstrument()
    _active.provider.shutdown()
    _active = None


def instrument_app(app: Any) -> None:
    """Server spans for a FastAPI app, when tracing is on. The ASGI `receive`/`send` spans are
    left out: one per body chunk, they say nothing an operator needs."""
    if _active is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_active.provider, exclude_spans=["receive", "send"])


def client_interceptors() -> list[Any]:
    """Interceptors for a Temporal client: workers built from the client inherit them."""
    if _active is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(_active.tracer)]


@contextmanager
def span(name: str, **attributes: str) -> Iterator[None]:
    """A span of our own (a connector call), nothing when tracing is off. Attributes must be
    identifiers (system names, kinds), never personal data."""
    if _active is None:
        yield
        return
    with _active.tracer.start_as_current_span(name, attributes={f"dsrflow.{k}": v for k, v in attributes.items()}):
        yield
