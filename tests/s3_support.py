"""An S3-speaking server for the tests of the S3 back end of the package storage: moto in server
mode, a process of its own on a loopback port, and an S3 client of its own (boto3, not the obstore
the back end uses) to look at what the bucket holds."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from devstack.processes import free_port
from dsrflow.settings import Settings

BUCKET = "dsrflow-tests"


@contextlib.contextmanager
def moto_server(directory: Path) -> Iterator[str]:
    """moto's S3 on 127.0.0.1; yields its endpoint URL, with the tests' bucket created."""
    port = free_port()
    with open(directory / "moto.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, f"moto exited; see {directory / 'moto.log'}"
                assert time.monotonic() < deadline, "moto did not answer within 30s"
                time.sleep(0.1)
        client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)


def client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def s3_settings(settings: Settings, endpoint: str, prefix: str | None = None) -> Settings:
    """`settings` on the S3 back end, under a prefix of their own (a new one unless given)."""
    return settings.model_copy(update={
        "storage": "s3", "s3_endpoint": endpoint, "s3_bucket": BUCKET, "s3_region": "us-east-1",
        "s3_prefix": prefix or f"t-{uuid.uuid4().hex[:10]}", "s3_access_key_id": "test",
        "s3_secret_access_key": "test"})


def stored(endpoint: str, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix`, key (within the prefix) -> bytes, as the bucket holds it."""
    s3 = client(endpoint)
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        for item in page.get("Contents", []):
            found[item["Key"].removeprefix(f"{prefix}/")] = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
    return found


def pending_uploads(endpoint: str, prefix: str) -> list[str]:
    """Multipart uploads begun and neither completed nor aborted (invisible, but stored)."""
    uploads = client(endpoint).list_multipart_uploads(Bucket=BUCKET, Prefix=f"{prefix}/").get("Uploads", [])
    return [u["Key"] for u in uploads]
