"""A staff alert the relay refuses for good (a 5yz reply: a policy rejection, a staff address it does
not take) stops no sweep: it is recorded on its request (`letter.refused`, the relay's reply), not
tried again, and the sweep carries on with every other request (activities/sweep_alerts.py
`sweep_alert`). Before, one refused reminder failed the whole start sweep on every run: the other
requests' reminders and frozen-workflow alerts never went and the run was never recorded (only
DsrSweepStale said so); a deferred erasure's refused alert was tried again by each daily run, and
nothing but the log said it was refused.

And a staff alert a sweep handed to the relay as it died is recorded, with its copy, even when no
run asks for it again (`record_handed_alerts`).

In-process against the real database, the Temporal dev server and the SMTP sink, the relay's
refusal stood in for by a mailer that refuses one request's letters; the dying sweep is a process
of its own, killed."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from email.message import Message

import aiosmtplib
import pytest
from temporalio.testing import ActivityEnvironment

from activities.deferred_processors import alert_unalerted, record_failure
from activities.mail import Mailer
from activities.request_start_sweep import RequestStartSweepActivities
from api.read_models.event_lines import describe_event
from dsrflow.domain.request_resume import ended_trouble_key
from dsrflow.domain.request_start import start_request_workflow
from dsrflow.infra.metrics import DatabaseGauges
from schemas.request_start import StartSweepInput
from schemas.workflow import workflow_id_for
from tests.conftest import database_pool
from tests.support import letters_for, stored_request, text_of
from tests.test_request_start_sweep import flag_in_a_process
from workers.dsr_worker import activity_context

_REFUSED = "SELECT data FROM audit_events WHERE request_id = $1::uuid AND event_type = 'letter.refused'"


class _RefusingFor(Mailer):
    """The relay, refusing for good each message about one request (554 to its DATA)."""

    def __init__(self, settings, request_id: str) -> None:
        super().__init__(settings)
        self.request_id, self.refused = request_id, 0

    async def send(self, message: Message, **kwargs) -> None:
        if message["X-DSR-Request-Id"] == self.request_id:
            self.refused += 1
            raise aiosmtplib.SMTPResponseException(554, "5.7.1 rejected by policy")
        await super().send(message, **kwargs)


async def _stopped_a_day(pool, settings, label: str) -> str:
    """A request flagged stopped (its workflow ended) 25 hours ago: reminded by each day's sweep."""
    rid = await stored_request(pool, settings, label, "erasure")
    await pool.execute(
        """INSERT INTO step_troubles (request_id, trouble_key, step, message, transient, since)
           VALUES ($1::uuid, $2, 'workflow', 'the request''s workflow terminated while the request was open',
                   false, now() - interval '25 hours')""", rid, ended_trouble_key(f"run-{rid}"))
    return rid


async def test_a_reminder_the_relay_refuses_for_good_is_recorded_and_the_start_sweep_carries_on(
        postgres, settings, dev_server, mail_sink):
    async with database_pool(postgres, "sweep_refused") as (database_url, pool):
        ours = settings.model_copy(update={"database_url": database_url})
        refused, other = await _stopped_a_day(pool, ours, "refused"), await _stopped_a_day(pool, ours, "other")
        relay = _RefusingFor(ours, refused)
        sweep = RequestStartSweepActivities(replace(activity_context(ours, pool), mailer=relay))
        first = await ActivityEnvironment(client=dev_server.client).run(sweep.start_unstarted_requests,
                                                                      StartSweepInput(reason="test"))
        second = await ActivityEnvironment(client=dev_server.client).run(sweep.start_unstarted_requests,
                                                                       StartSweepInput(reason="test"))
        [record] = [row["data"] for row in await pool.fetch(_REFUSED, refused)]
        recorded = await pool.fetchval("SELECT summary->>'stopped_reminded' FROM sweep_runs "
                                       "WHERE sweep = 'request_start_sweep'")
        gauges = DatabaseGauges(ttl=0)
        await gauges.refresh(pool, "UTC")
    # The operator is told (DsrStaffAlertsRefused): nothing else but the request's timeline would.
    assert [s.value for f in gauges.collect() if f.name == "dsrflow_staff_alerts_refused" for s in f.samples] == [1]
    assert (first.stopped_reminded, second.stopped_reminded, recorded) == (1, 0, "0")
    assert len(letters_for(mail_sink, other, "staff_alert")) == 1
    assert letters_for(mail_sink, refused, "staff_alert") == []
    assert relay.refused == 1  # refused for good: not offered to the relay again
    assert record["purpose"] == "staff_alert" and record["reply"].endswith("554 5.7.1 rejected by policy")


async def test_a_request_whose_flag_cannot_be_written_holds_back_no_other_part_of_the_sweep(
        postgres, settings, dev_server, mail_sink):
    """An open request whose workflow ended and whose policy version no longer loads: its alert
    cannot render, every run. The sweep still reminds staff of the other stopped request (a later
    part), then fails, for its retry; before, every run ended at the broken request."""
    client = dev_server.client
    async with database_pool(postgres, "sweep_pieces") as (database_url, pool):
        # Ended workflows are flagged once this old: at once here (the setting's floor is a minute).
        ours = settings.model_copy(update={"database_url": database_url, "start_sweep_after_minutes": 0})
        broken, other = await stored_request(pool, ours, "broken", "erasure"), await _stopped_a_day(pool, ours, "kept")
        await start_request_workflow(client, dict(await pool.fetchrow(
            "SELECT * FROM dsr_requests WHERE id = $1", uuid.UUID(broken))), 60,
            task_queue=f"pieces-{uuid.uuid4().hex[:6]}", task_timeout=10)
        await client.get_workflow_handle(workflow_id_for(broken)).terminate("by mistake")
        await pool.execute("INSERT INTO policy_versions (version, content) VALUES ('unreadable', '{\"controller\": 1}')")
        await pool.execute("UPDATE dsr_requests SET policy_version = 'unreadable' WHERE id = $1", uuid.UUID(broken))
        ended = f"WorkflowId = '{workflow_id_for(broken)}' AND ExecutionStatus = 'Terminated'"
        # Listed once the server's list of ended workflows catches up (within a second or so) and
        # the sweep's bound, in whole seconds, is past its end.
        for _ in range(100):
            closed = [w.close_time async for w in client.list_workflows(ended)]
            if closed and closed[0] and closed[0] < datetime.now(UTC).replace(microsecond=0):
                break
            await asyncio.sleep(0.1)
        last_success = "SELECT last_success_at FROM sweep_runs WHERE sweep = 'request_start_sweep'"
        before = await pool.fetchval(last_success)
        sweep = RequestStartSweepActivities(activity_context(ours, pool)).start_unstarted_requests
        with pytest.raises(Exception):  # noqa: B017, PT011 - the policy's loader's error, for the retry
            await ActivityEnvironment(client=client).run(sweep, StartSweepInput(reason="test"))
        after = await pool.fetchval(last_success)
    assert len(letters_for(mail_sink, other, "staff_alert")) == 1 and after == before  # not a success


async def test_a_deferred_failures_alert_refused_for_good_is_recorded_once(postgres, settings, mail_sink):
    async with database_pool(postgres, "deferred_refused") as (database_url, pool):
        ours = settings.model_copy(update={"database_url": database_url})
        rid = await stored_request(pool, ours, "deferred-refused", "erasure")
        await pool.execute(
            """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                              hold_ref, policy_version)
               SELECT id, 'h', 'crm', 'contacts', '41', 'legal_claims', '1', policy_version
                 FROM dsr_requests WHERE id = $1""", uuid.UUID(rid))
        relay = _RefusingFor(ours, rid)
        ctx = replace(activity_context(ours, pool), mailer=relay)
        due = await pool.fetch("SELECT * FROM deferred_erasures WHERE request_id = $1", uuid.UUID(rid))
        await record_failure(ctx, rid, "crm", due, "the CRM refused the deletion", asked=False)
        await alert_unalerted(ctx)  # the next runs: the failure's alert is not offered again
        await alert_unalerted(ctx)
        failed = await pool.fetchval("SELECT failed_at FROM deferred_erasures WHERE request_id = $1", uuid.UUID(rid))
        records = await pool.fetch(_REFUSED, rid)
    assert failed is not None and len(records) == 1 and relay.refused == 1
    assert letters_for(mail_sink, rid, "staff_alert") == []
    # The refusal says what the alert was about, as its `letter.sent` would, nothing of the subject;
    # before, the timeline read "alert to staff: <reply>" whichever alert it was.
    data = records[0]["data"]
    assert (data["about"], data["about_system"]) == ("deferred_failed", "crm")
    line = describe_event({"event_type": "letter.refused", "data": data}, systems={"crm": "CRM"})
    assert line.startswith("Letter refused for good by the mail relay (alert to staff about CRM: "
                           "an erasure a hold had deferred failed: "), line
    assert line.endswith("554 5.7.1 rejected by policy)"), line


async def test_an_alert_a_dying_sweep_handed_over_is_recorded_though_nobody_asks_for_it_again(
        postgres, settings, dev_server, mail_sink):
    """The sweep flagging an ended workflow dies once the relay has the alert, before hearing its
    answer; the request is closed before the next run, so no run asks for that alert again. The
    next start sweep records it from the copy kept with its claim (`letter.sent`, the stored copy,
    `mail.unconfirmed`) and sends nothing. Before, its outbox row stayed `data_sent` for good and
    the evidence held no copy of what staff were told."""
    client = dev_server.client
    async with database_pool(postgres, "sweep_handed") as (database_url, pool):
        ours = settings.model_copy(update={"database_url": database_url,
                                           "temporal_address": client.service_client.config.target_host})
        rid = await stored_request(pool, ours, "handed", "erasure")
        await start_request_workflow(client, dict(await pool.fetchrow(
            "SELECT * FROM dsr_requests WHERE id = $1", uuid.UUID(rid))), 60,
            task_queue=f"handed-{uuid.uuid4().hex[:6]}", task_timeout=10)
        await client.get_workflow_handle(workflow_id_for(rid)).terminate("by mistake")
        ran = await flag_in_a_process(ours, "flag_ended_workflows", f"mail-accepted~{rid}")
        assert ran.returncode == -9, "the flag never reached its failpoint: " + ran.stderr[-3000:]
        # Closed meanwhile (nothing asks for its alert again), and the dead sender's time is up.
        await pool.execute("UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1",
                           uuid.UUID(rid))
        await pool.execute("UPDATE mail_outbox SET claimed_at = claimed_at - interval '1 hour' WHERE request_id = $1",
                           uuid.UUID(rid))
        await ActivityEnvironment(client=client).run(
            RequestStartSweepActivities(activity_context(ours, pool)).start_unstarted_requests,
            StartSweepInput(reason="test"))
        outbox = await pool.fetchrow("SELECT state, copy FROM mail_outbox WHERE request_id = $1", uuid.UUID(rid))
        kept = await pool.fetchval("SELECT body_text FROM sent_letters WHERE request_id = $1", uuid.UUID(rid))
        events = [r["event_type"] for r in await pool.fetch(
            "SELECT event_type FROM audit_events WHERE request_id = $1 AND event_type IN "
            "('letter.sent', 'mail.unconfirmed', 'mail.resent') ORDER BY chain_pos", uuid.UUID(rid))]
    [alert] = letters_for(mail_sink, rid, "staff_alert")  # sent once, by the dead process
    assert (outbox["state"], outbox["copy"], events) == ("sent", None, ["mail.unconfirmed", "letter.sent"])
    assert " ".join(kept.split()) == " ".join(text_of(alert).split())
