"""moto's S3 server on a loopback port, for the S3 package storage where no bucket is reachable:
the benchmarks (bench/export.py --storage s3) and the tests (tests/s3_support.py) start it here."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from devstack.processes import free_port


@contextlib.contextmanager
def moto_server(directory: Path, bucket: str) -> Iterator[str]:
    """Yields the endpoint URL of a moto S3 server holding `bucket`; its log is moto.log in
    `directory`. Stopped when the block ends."""
    port = free_port()
    with open(directory / "moto.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.put(f"{endpoint}/{bucket}", timeout=1)  # moto takes an unsigned CreateBucket
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not answer within 30 s; see {directory / 'moto.log'}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)
