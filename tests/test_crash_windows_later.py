"""Five more crash windows, each opened by killing a real worker or API process at the line it
follows (a failpoint, dsrflow/infra/failpoints.py), then restarting it: the deferred-erasure sweep
between one group's erasure and the next, and inside a group's failure record; a package download
cut off before its last byte; the Inbox staff alert between binding its messages and sending it,
and between sending it and marking it sent; the package purge between a package's file and its
row, and between its work and the record of its success; the audit anchor between its anchor and
the record of its success. Exactly once in effect, nothing lost. One stack and one database of
their own for the module (a sweep, an inbox check and an anchor take every row there)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus

from activities.letters import message_id_for
from activities.mail import Mailer
from activities.mailbox_alerts import alert_waiting
from devstack.processes import free_port
from devstack.smtp_sink import read_mailbox
from dsrflow.domain.audit_verify import verify_audit
from dsrflow.infra.storage import open_storage
from policy.mailbox import load_mailbox_policy
from schemas.audit import AnchorInput
from schemas.copies import PurgeInput
from schemas.holds import SweepInput
from schemas.workflow import workflow_id_for
from tests.fanout_stack import FanoutStack, api, fanout_stack_alone
from tests.hold_release import release_over_rest
from tests.process_support import answering, died, dsrflow_process
from tests.support import (
    attested_request,
    eventually,
    fetch_rows,
    live_client,
    place_claims_hold,
    staff_headers,
    text_of,
    wait_for_letter,
)
from tests.test_mailbox_console import filed, raw_mail
from workers.dsr_worker import build_worker
from workflows.audit_anchor import AuditAnchorWorkflow
from workflows.erasure_sweep import ErasureSweepWorkflow
from workflows.package_purge import PackagePurgeWorkflow

HELD = ("crm", "analytics")  # Grace's legal-claims hold keeps her records there
# A table the policy names, renamed under it: that system cannot erase, whatever the retries.
TABLE = {"crm": "contacts", "analytics": "users"}


@pytest.fixture(scope="module")
async def later(postgres, settings, dev_server, mail_sink, tmp_path_factory) -> AsyncIterator[dict]:
    """The stack, and what the windows start from: Grace's erasure, done with her CRM and
    analytics records kept under a legal-claims hold; Ada's access package (a long chat transcript
    makes it several chunks) and its token. No worker runs afterwards: each test starts its own."""
    client = dev_server.client
    tmp = tmp_path_factory.mktemp("later")
    async with fanout_stack_alone(postgres, settings, client, tmp, "later") as (stack, pool), api(stack) as http:
        hold = await place_claims_hold(pool, stack.settings, "grace@example.com", list(HELD))
        await fetch_rows(stack.databases["crm"], "INSERT INTO chat_transcripts (contact_id, transcript) SELECT id, $1 "
                         "FROM contacts WHERE email = 'ada@example.com'", os.urandom(150_000).hex())
        async with build_worker(client, stack.settings, pool):
            erasure, access = await asyncio.gather(attested_request(http, pool, "erasure", "grace@example.com"),
                                                   attested_request(http, pool, "access"))
            for rid in (erasure, access):
                state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 90)
                assert state["status"] == "completed", state
        yield {"stack": stack, "pool": pool, "http": http, "hold": hold, "erasure": erasure, "access": access}


def _alerts(sink, message_id: str) -> list:
    return [m for m in read_mailbox(sink.directory) if m["Message-ID"] == message_id]


async def _sweep(client, stack: FanoutStack, name: str):
    """A sweep of everything due, as the daily schedule's next run starts it."""
    return await client.start_workflow(ErasureSweepWorkflow.run, SweepInput(reason="test"),
                                       id=f"sweep-{name}-{uuid.uuid4().hex[:6]}", task_queue=stack.settings.task_queue)


async def test_a_sweep_killed_between_groups_and_inside_a_failure_record_erases_and_alerts_once(
        later, dev_server, mail_sink, tmp_path):
    """Releasing Grace's hold sweeps her CRM and analytics records, one group each. The worker dies
    once the first group's erasure has committed, before its rows are marked done; the next run's
    worker fails the second group (its table renamed under the policy), its failure on record first
    (1933083), and dies as the relay accepted the staff alert, before the alert was recorded. The
    run after that finishes the alert without sending it again: every released record is erased
    once (the ledger), the failure is recorded once, and staff got one alert; no row is left
    neither done nor failed."""
    client, stack, pool, rid = dev_server.client, later["stack"], later["pool"], later["erasure"]
    held = await pool.fetch("SELECT * FROM deferred_erasures WHERE request_id = $1 AND hold_kind = 'legal_claims' "
                            "ORDER BY id", uuid.UUID(rid))
    first = held[0]["system"]  # the sweep takes the groups in this order
    (second,) = set(HELD) - {first}
    assert {r["system"] for r in held} == set(HELD)
    alert = message_id_for(f"{rid}:staff_alert:deferred-{second}")
    await fetch_rows(stack.databases[second], f"ALTER TABLE {TABLE[second]} RENAME TO {TABLE[second]}_old")
    sweeps = []
    async with dsrflow_process("worker", stack.settings, client, tmp_path, failpoints=f"deferred-erased~{first}") as worker:
        released = await release_over_rest(later["http"], later["hold"]["id"],
                                           headers=await staff_headers(pool, "compliance"))
        assert released.status_code in (202, 204), released.text
        sweeps.append(client.get_workflow_handle(f"sweep-release-{later['hold']['id']}"))
        await died(worker, tmp_path)
    keys = {(r["dataset"], r["record_key"]) for r in held if r["system"] == first}
    ledger = ("SELECT system, dataset, record_key, count(*) AS n FROM erasure_ledger WHERE request_id = $1 "
              "AND origin = 'deferred' GROUP BY 1, 2, 3")
    # The window is open: the first group's erasure committed (its ledger with it), its rows not done.
    assert {(r["dataset"], r["record_key"]) for r in await pool.fetch(ledger, uuid.UUID(rid))
            if r["system"] == first} == keys
    assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1 AND done_at IS NULL "
                               "AND failed_at IS NULL AND hold_kind = 'legal_claims'", uuid.UUID(rid)) == len(held)

    async with dsrflow_process("worker", stack.settings, client, tmp_path,
                               failpoints=f"mail-accepted~staff_alert:deferred-{second}") as worker:
        sweeps.append(await _sweep(client, stack, "next"))
        await died(worker, tmp_path)
    assert len(_alerts(mail_sink, alert)) == 1  # the relay has it; nothing says so yet
    assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1 AND system = $2 "
                               "AND failed_at IS NOT NULL", uuid.UUID(rid), second) == len(held) - len(keys)

    async with dsrflow_process("worker", stack.settings, client, tmp_path, failpoints="") as worker:
        report = await asyncio.wait_for((await _sweep(client, stack, "after")).result(), 60)
    for handle in sweeps:  # each waits for its dead attempt's heartbeat to time out: not this test's
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("the crash test is over")

    assert report.erased == 0 and not report.unable  # the failure was the killed run's, on record before it died
    rows = await pool.fetch("SELECT system, done_at, failed_at, failure FROM deferred_erasures "
                            "WHERE request_id = $1 AND hold_kind = 'legal_claims'", uuid.UUID(rid))
    assert all(r["done_at"] is not None and r["failed_at"] is None for r in rows if r["system"] == first)
    assert all(r["done_at"] is None and r["failed_at"] is not None
               and f"table '{TABLE[second]}' does not exist" in r["failure"]
               for r in rows if r["system"] == second)
    erased = await pool.fetch(ledger, uuid.UUID(rid))
    assert sorted((r["dataset"], r["record_key"]) for r in erased if r["system"] == first) == sorted(keys)
    assert all(r["n"] == 1 for r in erased) and not any(r["system"] == second for r in erased)
    assert await fetch_rows(stack.databases[first], f"SELECT 1 FROM {TABLE[first]} WHERE email = 'grace@example.com'") == []
    events = [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM audit_events WHERE request_id = $1 AND (data->>'system' = $2 OR event_type LIKE 'mail.%')",
        uuid.UUID(rid), second)]
    assert events.count("erasure.deferred_failed") == 1 and events.count("mail.unconfirmed") == 1
    assert "mail.resent" not in events
    (sent,) = _alerts(mail_sink, alert)
    assert "could not erase the records a hold had kept" in " ".join(text_of(sent).split())
    assert sent["X-DSR-Request-Id"] == rid
    assert await pool.fetchval("SELECT count(*) FROM sent_letters WHERE letter_key = $1",
                               f"{rid}:staff_alert:deferred-{second}") == 1  # what the evidence pack lists


async def test_a_download_cut_off_by_the_api_dying_is_not_recorded(later, dev_server, mail_sink, tmp_path):
    """The API dies while Ada's package is being streamed, a chunk gone and more to come: the
    evidence shows no download. Restarted, the API streams it whole (the portal's button), and
    the evidence shows one download; downloading it again adds none."""
    client, stack, pool, rid = dev_server.client, later["stack"], later["pool"], later["access"]
    token = re.search(r"/portal/packages/([0-9a-f]{64})", text_of(await wait_for_letter(mail_sink, rid, "response")))
    assert token is not None
    port = free_port()
    own = stack.settings.model_copy(update={"api_port": port, "public_url": f"http://127.0.0.1:{port}"})
    compliance = await staff_headers(pool, "compliance")

    async def evidence() -> tuple[list, list]:
        pack = (await later["http"].get(f"/v1/requests/{rid}/evidence", headers=compliance)).json()
        return ([p["downloaded_at"] for p in pack["packages"]],
                [e for e in pack["audit"]["events"] if e["event_type"] == "package.downloaded"])

    partial = bytearray()
    async with live_client(base_url=own.public_url, timeout=30) as http:
        async with dsrflow_process("api", own, client, tmp_path, failpoints="package-chunk-sent") as first:
            await answering(http, first, tmp_path)
            with pytest.raises(httpx.TransportError):
                async with http.stream("GET", f"/v1/public/packages/{token[1]}") as answer:
                    assert answer.status_code == 200
                    async for piece in answer.aiter_bytes():
                        partial += piece
            await died(first, tmp_path, role="api")
        assert await evidence() == ([None], [])
        async with dsrflow_process("api", own, client, tmp_path, failpoints="") as again:
            await answering(http, again, tmp_path)
            whole = await http.post(f"/portal/packages/{token[1]}")
            assert whole.status_code == 200, whole.text
            downloaded, events = await evidence()
            twice = await http.get(f"/v1/public/packages/{token[1]}")
    assert 0 < len(partial) < len(whole.content) and whole.content.startswith(bytes(partial))
    assert twice.status_code == 200 and twice.content == whole.content
    assert any(name.startswith("crm/") for name in zipfile.ZipFile(io.BytesIO(whole.content)).namelist())
    assert downloaded[0] is not None and len(events) == 1
    assert await evidence() == (downloaded, events)  # the second download: no second record
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 "
                               "AND event_type = 'package.downloaded'", uuid.UUID(rid)) == 1


async def test_an_inbox_alert_killed_around_its_send_goes_once_and_names_each_message_once(
        later, dev_server, mail_sink, tmp_path):
    """An e-mail has waited ten days. The worker's first check binds it to an alert and dies before
    sending; by the next check a second waits too, and that worker dies as the relay accepted the
    first alert, before it was marked sent. The next worker records that alert without sending it
    again, and alerts the second e-mail alone; a later check names neither again."""
    client, stack, pool = dev_server.client, later["stack"], later["pool"]
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)

    async def waiting(tag: str) -> str:
        return await filed(stack.settings, pool, raw_mail(f"{tag}@example.com", "Erase me", date=ten_days_ago),
                           arrived=ten_days_ago)

    first = await waiting("first")
    async with dsrflow_process("worker", stack.settings, client, tmp_path, failpoints="mailbox-alert-bound") as worker:
        await died(worker, tmp_path)
    key = await pool.fetchval("SELECT alert_key FROM mailbox_messages WHERE id = $1", uuid.UUID(first))
    assert key is not None and not _alerts(mail_sink, message_id_for(key))
    second = await waiting("second")
    async with dsrflow_process("worker", stack.settings, client, tmp_path,
                               failpoints="mail-accepted~mailbox-alert:") as worker:
        await died(worker, tmp_path)
    assert len(_alerts(mail_sink, message_id_for(key))) == 1

    async def alerted() -> bool:
        return await pool.fetchval("SELECT count(*) FROM mailbox_messages WHERE alerted_at IS NOT NULL") == 2

    async with dsrflow_process("worker", stack.settings, client, tmp_path, failpoints="") as worker:
        await eventually(alerted, 30)
    recorded = await pool.fetch("SELECT event_key, data FROM audit_events WHERE event_type = 'mail.alerted' "
                                "ORDER BY seq")
    assert [(r["event_key"], r["data"]["messages"]) for r in recorded][0] == (key, [first])
    assert [r["data"]["messages"] for r in recorded][1:] == [[second]]
    for event in recorded:
        (sent,) = _alerts(mail_sink, event["data"]["message_id"])
        assert sent["Subject"] == "[dsrflow] E-mails waiting in the privacy inbox: 1"
        assert "first@example.com" not in sent.as_string() and "second@example.com" not in sent.as_string()
    told = await pool.fetch("SELECT event_type FROM audit_events WHERE data->>'mail_key' = $1", key)
    assert [r["event_type"] for r in told] == ["mail.unconfirmed"]  # recorded as the relay's, not sent again

    # A later check, once a third e-mail has waited as long: it names that one alone.
    third = await waiting("third")
    policy = stack.policy.policy
    today = datetime.now(ZoneInfo(policy.defaults.timezone)).date()
    assert await alert_waiting(pool, Mailer(stack.settings), policy, load_mailbox_policy(), today,
                               stack.settings.base_url) == [third]
    recorded = await pool.fetch("SELECT data FROM audit_events WHERE event_type = 'mail.alerted' ORDER BY seq")
    assert [r["data"]["messages"] for r in recorded] == [[first], [second], [third]]
    assert len(_alerts(mail_sink, recorded[-1]["data"]["message_id"])) == 1


async def test_a_purge_killed_inside_a_package_and_before_its_success_purges_once_and_the_next_run_records_it(
        later, dev_server, mail_sink, tmp_path):
    """Ada's package link has expired (after the download test, which needs it). The hourly
    purge deletes its file, and its worker dies before the package's row is marked purged: the
    link says expired, nothing says deleted. The next run's worker finds the row again, marks it
    (its file already gone), and dies before the sweep's success is recorded (what the
    DsrSweepStale gauge reads). The package is purged, once in the trail; the run after that, as
    the schedule starts it, finds nothing more and records the success."""
    client, stack, pool, rid = dev_server.client, later["stack"], later["pool"], later["access"]
    await pool.execute("UPDATE packages SET expires_at = now() - interval '1 minute' WHERE request_id = $1",
                       uuid.UUID(rid))
    last = "SELECT last_success_at, summary FROM sweep_runs WHERE sweep = 'package_purge'"
    before = await pool.fetchrow(last)
    purged = "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = 'package.purged'"
    (package,) = await pool.fetch("SELECT id, path FROM packages WHERE request_id = $1", uuid.UUID(rid))

    async def purge(name: str):
        return await client.start_workflow(PackagePurgeWorkflow.run, PurgeInput(reason="test"),
                                           id=f"purge-{name}-{uuid.uuid4().hex[:6]}",
                                           task_queue=stack.settings.task_queue)

    killed = []
    async with dsrflow_process("worker", stack.settings, client, tmp_path,
                               failpoints=f"copy-deleted~{package['id']}") as worker:
        killed.append(await purge("cut"))
        await died(worker, tmp_path)
    assert await open_storage(stack.settings).size(package["path"]) is None
    assert await pool.fetchval("SELECT purged_at FROM packages WHERE id = $1", package["id"]) is None
    assert await pool.fetchval(purged, uuid.UUID(rid)) == 0
    token = re.search(r"/portal/packages/([0-9a-f]{64})", text_of(await wait_for_letter(mail_sink, rid, "response")))
    assert token is not None
    expired = await later["http"].get(f"/v1/public/packages/{token[1]}")
    assert expired.status_code == 410 and expired.json()["title"] == "Link expired"

    async with dsrflow_process("worker", stack.settings, client, tmp_path,
                               failpoints="sweep-succeeded~package_purge") as worker:
        killed.append(await purge("killed"))
        await died(worker, tmp_path)
    # The window is open: purged (found again), its success not recorded.
    assert await pool.fetchval("SELECT purged_at FROM packages WHERE id = $1", package["id"]) is not None
    assert await pool.fetchrow(last) == before

    async with dsrflow_process("worker", stack.settings, client, tmp_path, failpoints=""):
        report = await asyncio.wait_for((await purge("next")).result(), 60)
    for handle in killed:  # each one's dead attempt times out in 30 minutes
        await handle.terminate("the crash test is over")

    after = await pool.fetchrow(last)
    assert report.packages == 0 and after["summary"]["packages"] == 0
    assert before is None or before["last_success_at"] is None or after["last_success_at"] > before["last_success_at"]
    assert after["last_success_at"] is not None
    assert await pool.fetchval(purged, uuid.UUID(rid)) == 1
    assert await open_storage(stack.settings).size(package["path"]) is None
    gone = await later["http"].get(f"/v1/public/packages/{token[1]}")
    assert gone.status_code == 410 and gone.json()["title"] == "Package deleted"


async def test_an_audit_anchor_killed_before_it_records_its_success_anchors_each_chain_position_once(
        later, dev_server, tmp_path):
    """The ten-minute audit anchor writes its anchor (one transaction with the chain heads it
    marks anchored), and its worker dies before the sweep's success is recorded. The next run
    anchors again only what changed since, and records the success: no chain position is in two
    anchors, and the trail verifies (what `dsrflow audit verify` checks)."""
    client, stack, pool = dev_server.client, later["stack"], later["pool"]
    last = "SELECT last_success_at FROM sweep_runs WHERE sweep = 'audit_anchor'"
    before = await pool.fetchval(last)
    newest = "SELECT max(position) FROM audit_anchors"
    start = await pool.fetchval(newest) or 0

    async def anchor(name: str):
        return await client.start_workflow(AuditAnchorWorkflow.run, AnchorInput(reason="test"),
                                           id=f"anchor-{name}-{uuid.uuid4().hex[:6]}",
                                           task_queue=stack.settings.task_queue)

    async with dsrflow_process("worker", stack.settings, client, tmp_path,
                               failpoints="sweep-succeeded~audit_anchor") as worker:
        killed = await anchor("killed")
        await died(worker, tmp_path)
    assert await pool.fetchval(newest) == start + 1 and await pool.fetchval(last) == before

    async with dsrflow_process("worker", stack.settings, client, tmp_path, failpoints=""):
        report = await asyncio.wait_for((await anchor("next")).result(), 60)
    await killed.terminate("the crash test is over")  # its dead attempt times out in 5 minutes

    assert report.position in (None, await pool.fetchval(newest))
    assert await pool.fetchval(last) is not None and await pool.fetchval(last) != before
    assert await pool.fetch("SELECT chain_id, chain_pos FROM audit_anchor_heads GROUP BY 1, 2 "
                            "HAVING count(*) > 1") == []
    async with pool.acquire() as conn:
        verified = await verify_audit(conn)
    assert verified.ok, verified.describe()
