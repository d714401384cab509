"""HTTP clients for the connectors whose answers are read whole, with a cap on an answer's size.

httpx reads a body into memory however long it is, and its timeout bounds each read, not the
exchange: a hostile or broken processor answering a status poll, a discovery document or a token
call with an endless body, a chunk every few seconds, grew the shared worker's memory until it
was killed (attacker audit). Past the cap the answer is refused as a protocol error, which each
connector already treats as the service being unavailable: retried, then flagged for staff.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from activities.connectors.tls import tls_context

ANSWER_BYTES = 32 * 1024 * 1024  # an OpenDSR results document or a SaaS page is far smaller
DOCUMENT_BYTES = 1024 * 1024  # a discovery document, a certificate


class AnswerTooLarge(httpx.RemoteProtocolError):
    """An answer longer than the client's cap."""


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, limit: int, url: httpx.URL) -> None:
        self._stream, self._limit, self._url = stream, limit, url

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._stream:
            seen += len(chunk)
            if seen > self._limit:
                raise AnswerTooLarge(f"{self._url.host}{self._url.path} answered more than {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Capped(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int) -> None:
        self._inner, self._limit = inner, limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._limit:
            await response.aclose()
            raise AnswerTooLarge(f"{request.url.host}{request.url.path} announced {declared} bytes")
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CappedStream(response.stream, self._limit, request.url)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def bounded_client(*, limit: int = ANSWER_BYTES, **options: Any) -> httpx.AsyncClient:
    """An httpx client (TLS verified with the process's one context) whose answers stop at `limit`."""
    return httpx.AsyncClient(transport=_Capped(httpx.AsyncHTTPTransport(verify=tls_context()), limit), **options)
