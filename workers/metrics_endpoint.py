"""The worker's metrics port: one `GET /metrics` with dsrflow's metrics and the Temporal SDK's.

The SDK publishes its metrics from its own (Rust) HTTP server. We bind that one to a free port
on 127.0.0.1 and append its page to ours, so that each worker is one Prometheus target on one
port, whatever the SDK's server listens on. The two pages share no metric family (ours start
`dsrflow_` or `process_`, the SDK's `temporal_`), so the text format stays valid.

There are no credentials here: the bind address decides who reads it (DSRFLOW_WORKER_METRICS_ADDRESS,
127.0.0.1:9464 by default; in docker-compose.yml the compose network, not published). A port
already taken does not stop the worker: running requests matters more than counting them, the
error is logged, and Prometheus reports the target down.
"""

from __future__ import annotations

import asyncio
import urllib.request

import asyncpg
from temporalio.runtime import Runtime

from dsrflow.infra.logging import get_logger
from dsrflow.infra.metrics import (
    CONTENT_TYPE,
    DatabaseGauges,
    exposition,
    free_loopback_address,
    sdk_metrics_runtime,
)
from dsrflow.settings import Settings

_READ_TIMEOUT = 5.0
_MAX_HEAD = 16 * 1024  # a scraper's request line and headers; anything longer is not one
log = get_logger("dsrflow.worker.metrics")


def worker_runtime(settings: Settings) -> tuple[Runtime | None, str | None]:
    """The Temporal runtime for the worker's client and the URL of the SDK's metrics page;
    (None, None), the SDK's default runtime, when the metrics port is off."""
    if settings.worker_metrics_address == "off":
        return None, None
    address = free_loopback_address()
    return sdk_metrics_runtime(address), f"http://{address}/metrics"


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=_READ_TIMEOUT) as answer:  # noqa: S310 - our own loopback URL
        return bytes(answer.read())


class WorkerMetrics:
    def __init__(self, pool: asyncpg.Pool, timezone: str, sdk_url: str | None) -> None:
        self.pool, self.timezone, self.sdk_url = pool, timezone, sdk_url
        self.gauges = DatabaseGauges()

    async def page(self) -> bytes:
        ours = await exposition(self.gauges, self.pool, self.timezone)
        if self.sdk_url is None:
            return ours
        try:
            # urllib, not httpx: a scrape every 15 s must not become a span of every trace.
            return ours + await asyncio.to_thread(_fetch, self.sdk_url)
        except OSError as exc:
            log.warning("temporal sdk metrics not read", error=type(exc).__name__)
            return ours

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            method, _, rest = head.decode("latin-1").partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            if path != "/metrics":
                status, body, kind = "404 Not Found", b"not found; scrape /metrics\n", "text/plain"
            elif method not in ("GET", "HEAD"):
                status, body, kind = "405 Method Not Allowed", b"GET /metrics\n", "text/plain"
            else:
                status, body, kind = "200 OK", await self.page(), CONTENT_TYPE
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # not a scraper, or gone: nothing to answer
        finally:
            writer.close()


async def serve_worker_metrics(settings: Settings, pool: asyncpg.Pool, sdk_url: str | None,
                               timezone: str) -> asyncio.Server | None:
    """Listen on DSRFLOW_WORKER_METRICS_ADDRESS; None when it is off or cannot be bound.
    `timezone`: the controller's, from the policy the worker started on; it decides which day is
    today, so when a request is overdue."""
    if settings.worker_metrics_address == "off":
        return None
    host, _, port = settings.worker_metrics_address.rpartition(":")
    metrics = WorkerMetrics(pool, timezone, sdk_url)
    try:
        server = await asyncio.start_server(metrics.handle, host.strip("[]"), int(port), limit=_MAX_HEAD)
    except OSError as exc:
        log.error("worker metrics endpoint not started", address=settings.worker_metrics_address,
                  error=f"{type(exc).__name__}: {exc.strerror or exc}")
        return None
    bound = server.sockets[0].getsockname()
    log.info("worker metrics endpoint listening", address=f"{bound[0]}:{bound[1]}")
    return server
