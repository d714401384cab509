"""The processors an erasure asks, its worker killed in each window of an ask (a failpoint,
dsrflow/infra/failpoints.py). Over OpenDSR: the job submitted and its result not kept
(`task-effect-committed`), the processor's signed callback arriving meanwhile. By e-mail
(activities/connectors/manual_email.py): the e-mail and the `manual_tasks` row committed and the
task's result not kept (`task-effect-committed`), the e-mail claimed and not yet handed to the relay
(`mail-claimed`), accepted and not yet recorded (`mail-accepted`; a death at `mail-handed` leaves
the retry the same `data_sent`, killed for letters in tests/test_crash_windows.py, where the
letters' own path through the outbox is killed). The processor's e-mail records itself otherwise
(its task row and `processor.asked`, written with the outbox's mark). Each way each processor is
asked once, its link works, each processor's task ends done and the request completes once the processor
confirms. One stack for the four windows: each worker process is killed in turn on a request of
its own, and one worker finishes them all, so the retries' heartbeat timeouts are waited for once.
The processor's reminder, sent by the task's poll, is killed in a poll run as a process of its own,
as is the e-mail telling it the request was withdrawn; the relay down at the ask is a try run in
this process."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.fanout import FanoutActivities
from activities.letters import message_id_for
from activities.outbox import SENDER_LIFETIME
from activities.processor_mail import REMINDER_PURPOSE, REQUEST_PURPOSE, WITHDRAWAL_PURPOSE
from devstack.processes import free_port
from schemas.workflow import SystemTask, TaskInput, TaskRecord, workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.outbox_restart import claims_cut_off_by_a_restart
from tests.process_support import died, dsrflow_process, poll_killed_at, released
from tests.support import (
    attested_request,
    eventually,
    letters_for,
    staff_headers,
    stored_request,
    text_of,
    unique_email,
    wait_for_letter,
)
from tests.test_crash_uploads import ON_RECORD
from tests.test_processor_exports import _LINK, SURVEYS_CONTACT
from workers.dsr_worker import activity_context, build_worker

# Where each request's worker dies (`{rid}`: the request, `{mail}`: its e-mail to the survey
# provider), and what the retry writes in the audit trail about that e-mail (None: whatever state
# the kill found it in, as it goes out beside the OpenDSR job).
WINDOWS: list[tuple[str, list[str] | None]] = [
    ("task-effect-committed~email_marketing:erase:{rid}", None),
    ("task-effect-committed~surveys:erase:{rid}", []),
    ("mail-claimed~{mail}", ["mail.resent"]),
    ("mail-accepted~{mail}", ["mail.unconfirmed"]),
]


_STOPPED = "the attempt was stopped"  # the reason of a stopped try's own `mail.unconfirmed`


def _message_id(rid: str) -> str:
    """The Message-ID, and outbox key, of the request's e-mail to the survey provider."""
    return message_id_for(f"{rid}:{REQUEST_PURPOSE}:surveys:erase")


@pytest.fixture(scope="module")
async def asks(postgres, settings, dev_server, tmp_path_factory) -> AsyncIterator[dict[str, Any]]:
    """The fan-out stack with the survey provider asked by e-mail, and no worker: each test runs its own."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)  # read by the processes started too
        async with fanout_stack(postgres, settings, dev_server.client, tmp_path_factory.mktemp("asks"),
                                keep_manual=("surveys",)) as stack, api(stack) as http:
            yield {"stack": stack, "http": http}


async def _on_record(pool, rid: str) -> None:
    """Wait until the request's e-mail to the survey provider is on record and its task waits."""
    async def waiting() -> bool:
        return await pool.fetchval(ON_RECORD, rid) == 1

    await eventually(waiting, 90)


async def _surveys_task(pool, rid: str, *, asked: bool = False) -> TaskInput:
    """The survey processor's erasure task of `rid` as its workflow runs it; `asked`: with the
    external id its e-mail put on record (a poll's input)."""
    request = uuid.UUID(rid)
    external_id = await pool.fetchval("SELECT external_id FROM manual_tasks WHERE request_id = $1", request) \
        if asked else None
    return TaskInput(request_id=rid, record=True, external_id=external_id,
                     policy_version=await pool.fetchval("SELECT policy_version FROM dsr_requests WHERE id = $1", request),
                     task=SystemTask(system="surveys", action="erase", connector="manual_email",
                                     label="Survey service provider"))


async def _polls_killed_around_an_e_mail(asks, dev_server, pool, label: str, then: str, mail: str):
    """An erasure whose survey processor was asked (a worker ran it, then none: the task's own poll,
    minutes away, does not run beside these), `then` run on the request's id, and its task's poll
    killed twice around the e-mail keyed `<request>:<mail>`: once it claimed it and before it went,
    then (sending it again) once the relay accepted it and before its record. The request, its
    task, the poll that carries on, and the e-mail's Message-ID."""
    stack, http = asks["stack"], asks["http"]
    async with build_worker(dev_server.client, stack.settings, pool):
        rid = await attested_request(http, pool, "erasure", unique_email(label))
        await _on_record(pool, rid)
    await pool.execute(then, uuid.UUID(rid))
    task = await _surveys_task(pool, rid, asked=True)
    message = message_id_for(f"{rid}:{mail}")
    for window in ("mail-claimed", "mail-accepted"):
        await poll_killed_at(stack.settings, f"{window}~{message}", task)
    return rid, task, FanoutActivities(activity_context(stack.settings, pool)).poll_system_action, message


async def test_a_worker_killed_in_each_window_of_asking_a_processor_asks_it_once(
        asks, dev_server, pool, mail_sink, tmp_path):
    client, stack, http = dev_server.client, asks["stack"], asks["http"]
    asked: list[str] = []
    async with contextlib.AsyncExitStack() as started:
        # Workers without schedules or a sticky queue (tests/worker_process.py): they start sooner,
        # and their workflows' next tasks go to any worker at once after a kill. All four start
        # now, held, so that their imports overlap: the four kills took 11.7 s one start after
        # another, 4.8 s so (alone).
        workers = [await started.enter_async_context(dsrflow_process(
            "worker", stack.settings, client, tmp_path, failpoints="", module="tests.worker_process", held=True))
            for _ in WINDOWS]
        for (failpoint, _), worker in zip(WINDOWS, workers, strict=True):
            # Opened with no worker at work (the API only starts its workflow): its id names the
            # failpoint of the worker released to take it up.
            rid = await attested_request(http, pool, "erasure", unique_email("asked"))
            released(worker, failpoints=failpoint.format(rid=rid, mail=_message_id(rid)))
            await died(worker, tmp_path)
            asked.append(rid)

    async with build_worker(client, stack.settings, pool):
        for rid in asked:
            await _on_record(pool, rid)
            mail = await wait_for_letter(mail_sink, rid, REQUEST_PURPOSE, 30)
            path = _LINK.search(text_of(mail)).group(1)
            assert (await http.post(path, data={"note": "Erased."})).status_code == 200
        states = [await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
                  for rid in asked]
        headers = await staff_headers(pool, "agent")
        results = {rid: (await http.get(f"/v1/requests/{rid}", headers=headers)).json()["results"]
                   for rid in asked}

    for rid, (failpoint, told), state in zip(asked, WINDOWS, states, strict=True):
        assert state["status"] == "completed", (failpoint, state)
        sent = letters_for(mail_sink, rid, REQUEST_PURPOSE)
        assert [m["Message-ID"] for m in sent] == [_message_id(rid)], failpoint
        assert len(letters_for(mail_sink, rid, "response")) == 1, failpoint
        assert await pool.fetchval("SELECT count(*) FROM manual_tasks WHERE request_id = $1", uuid.UUID(rid)) == 1
        events = await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1 "
                                  "AND (event_type LIKE 'mail.%' OR event_type LIKE 'processor.%') ORDER BY seq", uuid.UUID(rid))
        about_it = [(e["event_type"], e["data"].get("reason", "")) for e in events
                    if e["event_type"].startswith("mail.") and e["data"]["mail_key"] == _message_id(rid)]
        # What the kill left is told once, by the retry that found it; a try stopped in turn (its
        # heartbeat timed out on a loaded machine: activities/outbox.py) tells nothing if it gave
        # its claim back before the message went, or, once the relay had it, records it with one
        # `mail.unconfirmed` of its own, last. No event says a try died twice: one died.
        stopped = [t for t, reason in about_it if reason.startswith(_STOPPED)]
        by_retries = [t for t, reason in about_it if not reason.startswith(_STOPPED)]
        assert by_retries == told or told is None and len(by_retries) <= 1, (failpoint, about_it)
        assert len(stopped) <= 1 and (not stopped or about_it[-1][1].startswith(_STOPPED)), (failpoint, about_it)
        kinds = sorted((e["data"].get("system"), e["event_type"]) for e in events if e["event_type"].startswith("processor."))
        assert kinds == [("email_marketing", "processor.callback"), ("surveys", "processor.asked"),
                         ("surveys", "processor.confirmed")], failpoint
        statuses = {r["system"]: r["status"] for r in results[rid]}
        assert (statuses["email_marketing"], statuses["surveys"]) == ("done", "done"), (failpoint, statuses)


async def test_a_poll_killed_around_a_processors_reminder_reminds_it_once(asks, dev_server, pool, mail_sink):
    """The survey provider has not confirmed for longer than `reminder_days` (3): the task's poll
    reminds it. The poll dies with the reminder claimed and not yet handed to the relay, then
    (sending it again) accepted by the relay and not yet recorded; the next poll records it. The
    processor gets one reminder, counted once (`reminders` 1, one `processor.reminded`), and a
    poll after that sends none: the next is three days away."""
    rid, task, poll, reminder = await _polls_killed_around_an_e_mail(
        asks, dev_server, pool, "reminded",
        "UPDATE manual_tasks SET sent_at = sent_at - interval '4 days' WHERE request_id = $1",
        f"{REMINDER_PURPOSE}:surveys:erase:1")
    request = uuid.UUID(rid)

    async def reminded_on_record() -> bool:
        # A poll while PostgreSQL has not yet ended the dead poll's session hears its lock (BUSY)
        # and records nothing; a later one, as the task's next poll would, records the reminder.
        assert (await ActivityEnvironment().run(poll, task)).status == "pending"
        return await pool.fetchval("SELECT reminders FROM manual_tasks WHERE request_id = $1", request) == 1

    await eventually(reminded_on_record, 30)
    assert (await ActivityEnvironment().run(poll, task)).status == "pending"  # and one after sends nothing

    assert [m["Message-ID"] for m in letters_for(mail_sink, rid, REMINDER_PURPOSE)] == [reminder]
    assert await pool.fetchval("SELECT reminders FROM manual_tasks WHERE request_id = $1", request) == 1
    events = await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1 "
                              "AND (event_type LIKE 'mail.%' OR event_type = 'processor.reminded') ORDER BY seq", request)
    assert [e["event_type"] for e in events if e["event_type"] == "processor.reminded"] == ["processor.reminded"]
    assert [e["event_type"] for e in events if e["event_type"].startswith("mail.")
            and e["data"]["mail_key"] == reminder] == ["mail.resent", "mail.unconfirmed"]


async def test_a_processors_e_mail_the_relay_could_not_take_goes_once_when_it_is_back(asks, pool, mail_sink):
    """The relay is down as the survey provider is asked: the task waits as if asked (pending, its
    first check in a minute), with nothing on record but its outbox row (`failed`) and what staff
    read ("not yet e-mailed"). A check while the relay is still down sends nothing; the first check
    with the relay back sends the e-mail: once, its task row once, no `mail.resent` (nothing had
    gone), and staff then read that the processor was asked. Before, the try failed, and once its
    retries ran out (about four minutes of outage) the task waited for staff."""
    stack = asks["stack"]
    rid = await stored_request(pool, stack.settings, "relay-down", "erasure")
    request = uuid.UUID(rid)
    task = await _surveys_task(pool, rid)
    down = FanoutActivities(activity_context(stack.settings.model_copy(update={"smtp_port": free_port()}), pool))
    waiting = await ActivityEnvironment().run(down.run_system_action, task)
    assert waiting.status == "pending" and waiting.poll_after_seconds == 15, waiting
    assert waiting.message.startswith("not yet e-mailed Survey service provider to carry out the erasure")
    await ActivityEnvironment().run(down.record_task_result, TaskRecord(request_id=rid, result=waiting))
    assert await pool.fetchval("SELECT state FROM mail_outbox WHERE mail_key = $1", _message_id(rid)) == "failed"
    assert await pool.fetchval("SELECT count(*) FROM manual_tasks WHERE request_id = $1", request) == 0

    polled = task.model_copy(update={"external_id": waiting.external_id})
    still = await ActivityEnvironment().run(down.poll_system_action, polled)
    assert still.status == "pending" and still.message.startswith("not yet e-mailed"), still
    assert letters_for(mail_sink, rid, REQUEST_PURPOSE) == []

    back = FanoutActivities(activity_context(stack.settings, pool))
    for _ in range(2):  # the check that sends it, and one after that sends nothing
        asked = await ActivityEnvironment().run(back.poll_system_action, polled)
        assert asked.status == "pending" and asked.message.startswith("asked Survey service provider"), asked
    assert [m["Message-ID"] for m in letters_for(mail_sink, rid, REQUEST_PURPOSE)] == [_message_id(rid)]
    assert await pool.fetchval("SELECT count(*) FROM manual_tasks WHERE request_id = $1", request) == 1
    on_record = await pool.fetchval("SELECT message FROM system_tasks WHERE request_id = $1 AND system = 'surveys'",
                                    request)
    assert on_record.startswith("asked Survey service provider"), on_record
    events = [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM audit_events WHERE request_id = $1 AND (event_type LIKE 'mail.%' "
        "OR event_type LIKE 'processor.%')", request)]
    assert events == ["processor.asked"]


async def test_a_processors_e_mail_cut_off_by_a_crash_and_a_database_restart_waits_and_goes_once(
        asks, mail_sink, tmp_path):
    """The worker died with the survey provider's e-mail claimed and not yet handed to the relay,
    and PostgreSQL restarted before the task's retry (the chaos smoke with its faults 4 s apart:
    RELIABILITY.md). The restart freed the claim's lock as a live sender's would be, so the outbox
    answers `busy` until no sender can still be alive (SENDER_LIFETIME, 7 minutes). The retry waits
    as if asked (pending, its first check in a minute; staff read why); the first check after that
    time sends the e-mail, once, its task row once, and staff read that the processor was asked.
    Before, each try failed on `busy`, and the task's attempts (about 4 minutes) ran out first: the
    processor was never asked, the task waited for staff and the request for them."""
    stack = asks["stack"]

    async def claim(pool) -> str:
        rid = await stored_request(pool, stack.settings, "cut-off", "erasure")
        await pool.execute("INSERT INTO mail_outbox (mail_key, request_id, message_id, state) "
                           "VALUES ($1, $2, $1, 'claimed')", _message_id(rid), uuid.UUID(rid))
        return rid

    async with claims_cut_off_by_a_restart(tmp_path, "cut_off", claim) as (pool, rid):
        await _cut_off_then_sent(pool, stack, rid, mail_sink)


async def _cut_off_then_sent(pool, stack, rid: str, mail_sink) -> None:
    request = uuid.UUID(rid)
    task = await _surveys_task(pool, rid)
    fanout = FanoutActivities(activity_context(stack.settings, pool))
    waiting = await ActivityEnvironment().run(fanout.run_system_action, task)
    assert waiting.status == "pending" and waiting.poll_after_seconds == 15, waiting
    assert waiting.message.startswith("not yet e-mailed Survey service provider to carry out the erasure "
                                      "(another attempt holds it"), waiting.message
    assert await _on_record_says(pool, request) == waiting.message
    polled = task.model_copy(update={"external_id": waiting.external_id})
    assert (await ActivityEnvironment().run(fanout.poll_system_action, polled)).message == waiting.message
    assert letters_for(mail_sink, rid, REQUEST_PURPOSE) == []

    # What the task's check finds once no sender can still be alive.
    await pool.execute("UPDATE mail_outbox SET claimed_at = claimed_at - make_interval(secs => $2) "
                       "WHERE mail_key = $1", _message_id(rid), SENDER_LIFETIME)
    for _ in range(2):  # the check that sends it, and one after that sends nothing
        asked = await ActivityEnvironment().run(fanout.poll_system_action, polled)
        assert asked.status == "pending" and asked.message.startswith("asked Survey service provider"), asked
    assert [m["Message-ID"] for m in letters_for(mail_sink, rid, REQUEST_PURPOSE)] == [_message_id(rid)]
    assert await pool.fetchval("SELECT count(*) FROM manual_tasks WHERE request_id = $1", request) == 1
    assert (await _on_record_says(pool, request)).startswith("asked Survey service provider")
    events = [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM audit_events WHERE request_id = $1 AND (event_type LIKE 'mail.%' "
        "OR event_type LIKE 'processor.%') ORDER BY seq", request)]
    assert events == ["mail.resent", "processor.asked"]


async def _on_record_says(pool, request: uuid.UUID) -> str:
    """What staff read of the survey provider's task."""
    return await pool.fetchval("SELECT message FROM system_tasks WHERE request_id = $1 AND system = 'surveys'",
                               request)


async def test_a_poll_killed_around_telling_a_processor_the_request_is_withdrawn_tells_it_once(
        asks, dev_server, pool, mail_sink):
    """The erasure closed unanswered before the survey provider confirmed (closed as the withdrawal
    records it, no worker running): the task's poll tells the provider the request is withdrawn
    (activities/connectors/manual_email.py `_withdraw`). The poll dies with that e-mail claimed and
    not yet handed to the relay, then (sending it again) accepted by the relay and not yet recorded;
    the next poll records it and ends the task. The provider gets one such e-mail, one event."""
    rid, task, poll, withdrawal = await _polls_killed_around_an_e_mail(
        asks, dev_server, pool, "withdrawn",
        "UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1",
        f"{WITHDRAWAL_PURPOSE}:surveys:erase")
    request = uuid.UUID(rid)

    async def ended() -> bool:
        # A poll while PostgreSQL still holds the dead poll's session hears its lock (busy: pending).
        return (await ActivityEnvironment().run(poll, task)).status == "needs_attention"

    await eventually(ended, 30)
    result = await ActivityEnvironment().run(poll, task)  # and one after sends nothing
    assert result.message is not None and result.message.endswith("told by e-mail that the request is withdrawn, "
                                                                  "not to act on it"), result
    assert [m["Message-ID"] for m in letters_for(mail_sink, rid, WITHDRAWAL_PURPOSE)] == [withdrawal]
    events = await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1 "
                              "AND (event_type LIKE 'mail.%' OR event_type = 'processor.withdrawn') ORDER BY seq", request)
    assert [e["event_type"] for e in events if e["event_type"] == "processor.withdrawn"] == ["processor.withdrawn"]
    assert [e["event_type"] for e in events if e["event_type"].startswith("mail.")
            and e["data"]["mail_key"] == withdrawal] == ["mail.resent", "mail.unconfirmed"]
