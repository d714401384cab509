"""One OpenDSR processor identity per pytest process, for the fake processors of tests that need
*a* processor and not a key of their own: each identity is a new RSA 2048 key (40-100 ms of CPU),
which signing then loads and checks once more (about 35 ms, `_signing_key` in
activities/connectors/opendsr_signature.py keeps a few). Tests of a rotated or foreign key still
generate theirs (tests/opendsr/test_protocol.py)."""

from __future__ import annotations

import functools

from activities.connectors.opendsr_signature import generate_processor_identity


@functools.cache
def processor_identity() -> tuple[bytes, bytes]:
    """(private key PEM, certificate PEM) for 127.0.0.1, the same for the whole process."""
    return generate_processor_identity("127.0.0.1")
