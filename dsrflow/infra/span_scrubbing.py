"""What every span passes through before it leaves the process (dsrflow/infra/tracing.py):
URLs reduced to route templates or paths without queries, the caller's address and user agent
dropped from server spans, every string left run through the log redactor.

Apart from tracing.py because it subclasses the OpenTelemetry SDK's exporter: tracing.py imports
this module, and so the SDK, only once tracing is switched on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status

from dsrflow.infra.logging import Redactor

# On a server span these describe the caller: an IP address is personal data, a user agent
# nearly so (with the IP, it singles a person out).
_CALLER_KEYS = frozenset({
    "net.peer.ip", "net.peer.port", "net.sock.peer.addr", "net.sock.peer.port", "client.address", "client.port",
    "http.client_ip", "network.peer.address", "network.peer.port", "http.user_agent", "user_agent.original",
    "user_agent.synthetic.type",
})
_URL_KEYS = frozenset({"http.url", "url.full"})
_PATH_KEYS = frozenset({"http.target", "url.path"})
_QUERY_KEYS = frozenset({"url.query"})


class ScrubbingExporter(SpanExporter):
    """Passes each span on with its URLs reduced and every string redacted (module docstring).
    The SDK's spans are read-only once ended, so each is copied; this is the one place every
    span passes through, whichever instrumentation made it."""

    def __init__(self, inner: SpanExporter, patterns: Sequence[str] = ()) -> None:
        self.inner = inner
        self.redactor = Redactor(patterns)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self.scrub(s) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def scrub(self, item: ReadableSpan) -> ReadableSpan:
        status = item.status
        if status.description:
            status = Status(status.status_code, self.redactor.redact(status.description))
        return ReadableSpan(
            name=self.redactor.redact(item.name), context=item.context, parent=item.parent,
            resource=item.resource, attributes=self.attributes(item.attributes or {}, item.kind),
            events=[Event(e.name, self.attributes(e.attributes or {}, None), e.timestamp) for e in item.events],
            links=item.links, kind=item.kind, status=status, start_time=item.start_time, end_time=item.end_time,
            instrumentation_scope=item.instrumentation_scope,
        )

    def attributes(self, attributes: Mapping[str, Any], kind: SpanKind | None) -> dict[str, Any]:
        route = attributes.get("http.route") if kind is SpanKind.SERVER else None
        out: dict[str, Any] = {}
        for key, value in attributes.items():
            if key in _QUERY_KEYS or (kind is SpanKind.SERVER and key in _CALLER_KEYS):
                continue
            if key in _URL_KEYS and isinstance(value, str):
                value = _without_query(value, route)
            elif key in _PATH_KEYS and isinstance(value, str):
                value = route or value.partition("?")[0]
            out[key] = self.redactor.redact(value) if isinstance(value, (str, list, tuple)) else value
        return out


def _without_query(url: str, route: str | None) -> str:
    """The URL without query, fragment or credentials; on a server span its path is the route
    template, so that a token in the path (package and verification links) stays out."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, route or parts.path, "", ""))
