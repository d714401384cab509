"""Package storage that every host can reach (issue 18), end to end on the S3 back end: the worker
and the API each have a DSRFLOW_HOME of their own, as on two hosts, and share only PostgreSQL,
Temporal, their keys and the bucket (moto's server over loopback). A processor's upload taken by
the API goes into the package the worker builds, which the API then serves; what the bucket holds
is sealed, a refused upload leaves nothing in it, and neither host keeps a file of its own."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

from dsrflow.crypto.keys import load_keyring, load_secret_key
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.s3_support import pending_uploads, s3_settings, stored
from tests.support import text_of, wait_for_letter
from tests.test_processor_exports import (  # noqa: F401 (surveys_contact is a fixture)
    _LINK,
    ANSWERS,
    LIMITS,
    MARKER,
    PROFILE,
    _open_access,
    _package,
    _surveys_status,
    _until,
    surveys_contact,
)
from workers.dsr_worker import build_worker


def _other_host(settings, home: Path):
    """The same configuration on another host: its own DSRFLOW_HOME, the same keys (production
    sets them in the environment; here they are the embedded stack's files, copied)."""
    home.mkdir(exist_ok=True)
    load_keyring(settings), load_secret_key(settings)  # made on first use
    for name in ("keys", "secret"):
        shutil.copy(settings.home / name, home / name)
    return settings.model_copy(update={"home": home})


def _local_files(home: Path) -> list[Path]:
    return [p for folder in ("packages", "uploads") if (home / folder).exists() for p in (home / folder).iterdir()]


async def test_a_package_built_on_one_host_is_served_from_another(
        postgres, settings, pool, dev_server, mail_sink, tmp_path, s3_endpoint, surveys_contact):  # noqa: F811
    on_s3 = s3_settings(settings, s3_endpoint)
    prefix = on_s3.s3_prefix
    async with fanout_stack(postgres, _other_host(on_s3, tmp_path / "api-host"), dev_server.client, tmp_path,
                            keep_manual=("surveys",), policy_updates=LIMITS) as stack:
        worker_settings = _other_host(stack.settings, tmp_path / "worker-host")
        async with build_worker(dev_server.client, worker_settings, pool), api(stack) as http:
            rid = await _open_access(http, pool)
            handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))
            path = _LINK.search(text_of(await wait_for_letter(mail_sink, rid, "processor_request", 60))).group(1)

            async def waiting_for_surveys() -> bool:
                return await _surveys_status(handle) == "pending"

            await _until(waiting_for_surveys)
            # Refused, part way through or at the end: nothing reaches the bucket.
            refused = await http.post(path, files=[("files", ("profile.json", PROFILE, "application/json")),
                                                   ("files", ("answers.csv", b"<html></html>", "text/csv"))])
            assert refused.status_code == 422, refused.text
            big = await http.post(path, files=[("files", ("answers.csv", b"a,b\n" + b"1,2\n" * 300_000, "text/csv"))])
            assert big.status_code == 413, big.text
            assert stored(s3_endpoint, prefix) == {} and pending_uploads(s3_endpoint, prefix) == []

            sent = await http.post(path, files=[("files", ("answers.csv", ANSWERS, "text/csv"))])
            assert sent.status_code == 200, sent.text
            [key] = [r["path"] for r in await pool.fetch("SELECT path FROM processor_exports WHERE request_id = $1",
                                                          uuid.UUID(rid))]
            assert key.startswith("uploads/") and key in stored(s3_endpoint, prefix)

            state = await asyncio.wait_for(handle.result(), 60)
            assert state["status"] == "completed", state
            _, archive = await _package(http, mail_sink, rid)
            assert archive.read("surveys/files/answers.csv") == ANSWERS
            package = await pool.fetchval("SELECT path FROM packages WHERE request_id = $1", uuid.UUID(rid))

        objects = stored(s3_endpoint, prefix)
        assert set(objects) == {key, package}
        assert not any(MARKER.encode() in data or b"ada@example.com" in data for data in objects.values())
        assert _local_files(stack.settings.home) == [] and _local_files(worker_settings.home) == []
