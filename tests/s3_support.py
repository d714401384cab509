"""An S3-speaking server for the tests of the S3 back end of the package storage: moto in server
mode, a process of its own on a loopback port, and an S3 client of its own (boto3, not the obstore
the back end uses) to look at what the bucket holds."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.s3_stand_in import moto_server as stand_in
from dsrflow.settings import Settings

BUCKET = "dsrflow-tests"


@contextlib.contextmanager
def moto_server(directory: Path) -> Iterator[str]:
    """moto's S3 on 127.0.0.1; yields its endpoint URL, with the tests' bucket created."""
    with stand_in(directory, BUCKET) as endpoint:
        yield endpoint


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
