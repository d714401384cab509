"""The one Temporal client factory: api, workers, CLI and tests all connect through here.

Every client gets the same data converter (pydantic payloads, AES-GCM codec, encoded failure
attributes) so nothing one process writes is unreadable, or readable in the clear, to another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import Runtime

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


async def connect_client(settings: Settings, *, address: str | None = None,
                         runtime: Runtime | None = None) -> Client:
    """Connect to Temporal with the project's data converter, the tracing interceptor when
    tracing is on (workers built from the client inherit it) and, for a worker, the runtime
    that publishes the SDK's metrics (dsrflow/infra/metrics.py)."""
    return await Client.connect(
        address or settings.effective_temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter_for(settings),
        interceptors=client_interceptors(),
        runtime=runtime,
    )


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
