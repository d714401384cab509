"""The one Temporal client factory: api, workers, CLI and tests all connect through here.

Every client gets the same data converter (pydantic payloads, AES-GCM codec, encoded failure
attributes) so nothing one process writes is unreadable, or readable in the clear, to another.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import timedelta

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig, RPCError, RPCStatusCode

from dsrflow.crypto.keys import load_keyring
from dsrflow.crypto.payload_codec import EncryptionCodec
from dsrflow.infra.reachable import Waiting, when_reachable
from dsrflow.infra.tracing import client_interceptors
from dsrflow.settings import Settings


def build_data_converter(keys: Sequence[tuple[str, bytes]]) -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def data_converter_for(settings: Settings) -> DataConverter:
    return build_data_converter(load_keyring(settings))


# The patience of a call only the engine answers, no worker (a start, a signal, a describe, a page
# of history): a loaded dev server answers these in well under a second, and without a timeout of
# its own a call the engine took but does not answer (hung, overloaded) waits the SDK's 30 s.
ENGINE_CALL = timedelta(seconds=10)


@dataclasses.dataclass(frozen=True)
class Patience:
    """How long a client keeps at a call the engine does not take: `retry`, its retries of a call
    refused (UNAVAILABLE: nothing listens, a restart); `connect`, each attempt's wait for a
    connection (an address whose packets go nowhere). Neither limits a call the engine has taken
    and is answering slowly: that is each call's `rpc_timeout`."""

    retry: RetryConfig | None = None  # None: the SDK's (10 s, 10 retries)
    connect: timedelta | None = None
    # The connect's own first call (GetSystemInfo), which the SDK gives 30 s: an engine that takes
    # the connection but never answers (hung, starting, overloaded) held the API's first request,
    # and every request queued behind its client, that long. None: the SDK's.
    first_answer: timedelta | None = None


# A worker, the CLI, a sweep: nobody waits at a screen, and riding out a restart of the engine is
# worth the SDK's 10 s of retries on every call.
PATIENT = Patience()
# The API: a person waits for each answer. The SDK's retries kept a staff action pressed while the
# engine was down waiting 15-20 s (two calls of 10 s each) for its 503; two seconds of retries
# still ride out a dropped connection, and then the person is told at once that the engine is
# down, and to try again in RETRY_AFTER seconds (api/outages.py). A call the engine took keeps
# the patience its caller set (api/service.py QUERY_PATIENCE, ACTION_PATIENCE): load only slows.
ANSWERING = Patience(RetryConfig(initial_interval_millis=100, multiplier=1.5, max_interval_millis=1000,
                                 max_elapsed_time_millis=2000), connect=timedelta(seconds=2),
                     first_answer=timedelta(seconds=5))


async def connect_client(settings: Settings, *, address: str | None = None,
                         runtime: Runtime | None = None, patience: Patience = PATIENT) -> Client:
    """Connect to Temporal with the project's data converter, the tracing interceptor when
    tracing is on (workers built from the client inherit it), `patience` with an engine that
    does not answer and, for a worker, the runtime that publishes the SDK's metrics
    (dsrflow/infra/metrics.py)."""
    connecting = Client.connect(
        address or settings.effective_temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter_for(settings),
        interceptors=client_interceptors(),
        runtime=runtime,
        retry_config=patience.retry,
        connect_timeout=patience.connect,
    )
    if patience.first_answer is None:
        return await connecting
    limit = patience.first_answer.total_seconds()
    try:
        return await asyncio.wait_for(connecting, limit)
    except TimeoutError:
        # What the SDK raises for a call the engine took and did not answer in time, so the API's
        # outage handler names the engine (api/outages.py) as it does for any such call.
        raise RPCError(f"the workflow engine took the connection but did not answer in {limit:g} s",
                       RPCStatusCode.DEADLINE_EXCEEDED, b"") from None


# What the SDK's connect says (in its RuntimeError's message) when nothing answers at the address
# yet: the port refuses or times out, or the name does not resolve yet (a container not started).
_NOT_YET_REACHABLE = ("tcp connect error", "dns error")


def not_yet_reachable(error: BaseException) -> bool:
    return isinstance(error, RuntimeError) and any(sign in str(error) for sign in _NOT_YET_REACHABLE)


async def connect_client_when_reachable(settings: Settings, waiting: Waiting, *,
                                        runtime: Runtime | None = None) -> Client:
    """`connect_client`, retried while Temporal cannot be reached (dsrflow/infra/reachable.py):
    a worker started before the server, or while it restarts, waits for it."""
    return await when_reachable(lambda: connect_client(settings, runtime=runtime), not_yet_reachable, waiting)
