"""One TLS context per process for the connectors' HTTP clients.

httpx builds a TLS context for each client it creates, loading every CA certificate: 33-65 ms of
CPU, and a connector (so its client) lives for one task. Sharing one context per process keeps
that cost to the first client; certificates are still verified against the same bundle.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
