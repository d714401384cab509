"""Processors without an API (connector kind `manual_email`): the e-mail to their privacy contact,
the confirmation link (GET changes nothing, POST confirms and completes the task), once-only
sending across retries, and reminders paced by `reminder_days`."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import date, timedelta

import pytest
from temporalio import activity

from activities.connectors import build_connector
from activities.connectors.base import ConnectorEnv, ErasureContext, LegalClaimsHold, Subject
from activities.connectors.manual_email import confirmation_token, external_id_for
from activities.mail import Mailer
from devstack.processes import free_port
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.references import short_reference
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from schemas.workflow import TaskInput, TaskResult, workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.support import api_client, eventually, letters_for, staff_headers, text_of, unique_email, wait_for_letter
from workers.dsr_worker import activity_context, build_activities, build_worker
from workflows.dsr import DataSubjectRequestWorkflow

SURVEYS_CONTACT = "privacy@surveys.example"
_LINK = re.compile(r"(http://\S+/v1/callbacks/manual/([0-9a-f]{64}))")


@pytest.fixture
async def stack(postgres, settings, dev_server, tmp_path, monkeypatch):
    # The shipped policy's survey provider, with its privacy contact from the environment.
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path,
                            keep_manual=("surveys",)) as running:
        assert running.policy.policy.systems["surveys"].connector == "manual_email"
        yield running


async def test_erasure_waits_for_the_processor_to_confirm_by_link(stack, pool, dev_server, mail_sink):
    real = next(a for a in build_activities(activity_context(stack.settings, pool))
                if a.__temporal_activity_definition.name == "run_system_action")
    attempts: list[int] = []

    @activity.defn(name="run_system_action")
    async def lost_after_sending(task: TaskInput) -> TaskResult:
        """The first attempt at the survey provider sends its e-mail, then the worker 'dies'
        before reporting: Temporal retries the activity, which must not mail again."""
        result = await real(task)
        if task.task.system == "surveys":
            attempts.append(activity.info().attempt)
        if task.task.system == "surveys" and activity.info().attempt == 1:
            raise RuntimeError("lost before reporting")
        return result

    async with build_worker(dev_server.client, stack.settings, pool, activity_overrides=[lost_after_sending]), \
            api(stack) as http:
        r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
            "identity_attested": True, "type": "erasure", "subject": {"email": "grace@example.com"}})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))

        mail = await wait_for_letter(mail_sink, rid, "processor_request", timeout=60)
        assert mail["To"] == "Privacy team <privacy@surveys.example>"
        assert mail["Message-ID"].endswith("@dsrflow>")
        body = text_of(mail)
        assert "grace@example.com" in body and "Connexeon BV" in body
        assert "erasure" in mail["Subject"] and "grace" not in mail["Subject"]
        # One reference, the one the subject line gives and the console's search takes, in the
        # subject line and the body alike; the id it stands for is nowhere to be quoted instead.
        reference = short_reference(rid)
        assert reference in mail["Subject"] and f"Our request reference: {reference}" in " ".join(body.split())
        assert rid not in body and rid not in mail.get_body(preferencelist=("html",)).get_content()
        # The request's law (the GDPR here) is the one cited: tests/test_regime_citations_processor_mail.py has the others.
        assert "as our data processing agreement and Art. 28(3)(e) GDPR provide" in " ".join(body.split())
        link, token = _LINK.search(body).groups()
        assert link.startswith(stack.settings.base_url)

        async def surveys_reported() -> bool:  # the retried attempt finished: task row has its message
            return len(attempts) == 2 and bool(await pool.fetchval(
                "SELECT message FROM system_tasks WHERE request_id = $1 AND system = 'surveys'", rid))

        async def others_settled() -> bool:
            state = await handle.query(DataSubjectRequestWorkflow.state)
            return all(r.status == "done" for r in state.results if r.system != "surveys") and len(state.results) == 5

        await eventually(surveys_reported)
        await eventually(others_settled)
        task = await pool.fetchrow("SELECT * FROM system_tasks WHERE request_id = $1 AND system = 'surveys'", rid)
        assert task["status"] == "pending"
        assert task["external_id"] == hashlib.sha256(token.encode()).hexdigest()
        assert attempts == [1, 2]
        assert len(letters_for(mail_sink, rid, "processor_request")) == 1  # the retry sent nothing
        state = await handle.query(DataSubjectRequestWorkflow.state)
        assert state.status == "in_progress"
        assert next(r for r in state.results if r.system == "surveys").status == "pending"

        # Link scanners follow links: a GET shows the page and changes nothing.
        page = await http.get(link.removeprefix(stack.api_url))
        assert page.status_code == 200
        assert '<form method="post">' in page.text and '<label for="note">' in page.text
        assert "grace" not in page.text and page.headers["cache-control"] == "no-store"
        assert f"<td>{reference}</td>" in page.text and rid not in page.text  # the e-mail's reference
        await asyncio.sleep(1)
        assert await pool.fetchval("SELECT confirmed_at FROM manual_tasks WHERE external_id = $1",
                                   task["external_id"]) is None
        assert (await handle.query(DataSubjectRequestWorkflow.state)).status == "in_progress"

        confirmed = await http.post(link.removeprefix(stack.api_url), data={"note": "Deleted from our panel."})
        assert confirmed.status_code == 200, confirmed.text
        assert "confirmation recorded" in confirmed.text
        state = await asyncio.wait_for(handle.result(), 60)
        assert state["status"] == "completed", state
        assert {r["system"]: r["status"] for r in state["results"]}["surveys"] == "done"
        response = text_of(await wait_for_letter(mail_sink, rid, "response"))
        assert "Art. 19" in response and "Survey service provider" in response

        again = await http.post(link.removeprefix(stack.api_url), data={"note": "twice"})
        assert again.status_code == 200 and "Already confirmed" in again.text
        events = await pool.fetch(
            "SELECT actor, data FROM audit_events WHERE request_id = $1 AND event_type = 'processor.confirmed'", rid)
        assert [e["actor"] for e in events] == ["processor:surveys"]
        assert await pool.fetchval("SELECT confirmation_note FROM manual_tasks WHERE external_id = $1",
                                   task["external_id"]) == "Deleted from our panel."
        assert len(letters_for(mail_sink, rid, "processor_request")) == 1
        assert letters_for(mail_sink, rid, "processor_reminder") == []

        for path in (f"/v1/callbacks/manual/{'0' * 64}", "/v1/callbacks/manual/not-a-token"):
            assert (await http.get(path)).status_code == 404
            assert (await http.post(path, data={"note": "x"})).status_code == 404


async def test_a_processor_is_told_the_answer_date_only_while_it_is_ahead(pool, settings, mail_sink, monkeypatch):
    """The processor e-mail says "We must answer the data subject by <date>" only while that date
    is ahead and the e-mail serves the answer: not for a restriction's lift, nor for an erasure
    asked once a hold ended, both after the request was answered (DPO audit: they named a date
    long past to act by)."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)
    loaded = load_policy()
    connector = build_connector(ConnectorEnv(
        system_name="surveys", system=loaded.policy.systems["surveys"], policy=loaded.policy,
        settings=settings, secret=b"s" * 32, callback_url="", pool=pool, mailer=Mailer(settings)))
    told = {}
    try:
        for case, due, act in (("ahead", date.today() + timedelta(days=20), "erase"),
                               ("past", date.today() - timedelta(days=400), "erase"),
                               ("lift", date.today() + timedelta(days=20), "lift_restriction")):
            row, _ = await create_request(
                pool, NewRequest(type="erasure", subject={"email": unique_email(case)}, identity_attested=True),
                loaded_policy=loaded, secret=load_secret_key(settings), actor="tests", idempotency_key=None)
            await pool.execute("UPDATE dsr_requests SET current_due_date = $2 WHERE id = $1", row["id"], due)
            subject = Subject(request_id=str(row["id"]), email=row["subject_email"])
            await (connector.erase(subject) if act == "erase" else connector.lift_restriction(subject))
            [asked] = letters_for(mail_sink, str(row["id"]), "processor_request")
            told[case] = "We must answer the data subject by" in text_of(asked)
    finally:
        await connector.close()
    assert told == {"ahead": True, "past": False, "lift": False}


async def test_a_reminder_dates_the_first_e_mail_in_the_controllers_time_zone(pool, settings, mail_sink, monkeypatch):
    """"On <date> we asked you": the date the processor's first e-mail went, in the controller's
    zone as in every letter. It was the UTC date: one sent at 23:30 UTC on 10 January, 00:30 on
    the 11th in Brussels, was dated the 10th."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)
    loaded = load_policy()
    assert loaded.policy.defaults.timezone == "Europe/Brussels"
    row, _ = await create_request(
        pool, NewRequest(type="erasure", subject={"email": unique_email("zone")}, identity_attested=True),
        loaded_policy=loaded, secret=load_secret_key(settings), actor="tests", idempotency_key=None)
    rid = str(row["id"])
    connector = build_connector(ConnectorEnv(
        system_name="surveys", system=loaded.policy.systems["surveys"], policy=loaded.policy,
        settings=settings, secret=b"s" * 32, callback_url="", pool=pool, mailer=Mailer(settings)))
    subject = Subject(request_id=rid, email=row["subject_email"])
    try:
        asked = await connector.erase(subject)
        await pool.execute("UPDATE manual_tasks SET sent_at = '2026-01-10 23:30:00+00' WHERE external_id = $1",
                           asked.external_id)
        await connector.status(subject, str(asked.external_id))
    finally:
        await connector.close()
    [reminder] = letters_for(mail_sink, rid, "processor_reminder")
    assert "on 11 January 2026 we asked you" in " ".join(text_of(reminder).split())


async def test_status_reminds_only_after_reminder_days(pool, settings, mail_sink, monkeypatch):
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)
    loaded = load_policy()
    row, _ = await create_request(
        pool, NewRequest(type="rectification", subject={"email": "ada@example.com"}, identity_attested=True,
                         corrections={"name": "Ada King"}),
        loaded_policy=loaded, secret=load_secret_key(settings), actor="tests", idempotency_key=None,
    )
    rid = str(row["id"])
    secret = b"s" * 32
    connector = build_connector(ConnectorEnv(
        system_name="surveys", system=loaded.policy.systems["surveys"], policy=loaded.policy,
        settings=settings, secret=secret, callback_url="", pool=pool, mailer=Mailer(settings)))
    subject = Subject(request_id=rid, email="ada@example.com")
    external_id = connector.job_id(subject, "rectify")
    assert external_id == external_id_for(confirmation_token(secret, rid, "surveys", "rectify"))

    first = await connector.rectify(subject, {"name": "Ada King"})
    assert (first.status, first.external_id) == ("pending", external_id)
    assert (await connector.rectify(subject, {"name": "Ada King"})).status == "pending"  # a retry
    [asked] = letters_for(mail_sink, rid, "processor_request")
    assert "Ada King" in text_of(asked) and "ada@example.com" in text_of(asked)

    async def backdate(column: str, days: float) -> None:
        await pool.execute(f"UPDATE manual_tasks SET {column} = now() - make_interval(secs => $2) "
                           "WHERE external_id = $1", external_id, days * 86400)

    def reminders() -> list:
        return letters_for(mail_sink, rid, "processor_reminder")

    assert (await connector.status(subject, external_id)).status == "pending"
    await backdate("sent_at", 2.9)
    assert (await connector.status(subject, external_id)).status == "pending"
    assert reminders() == []

    await backdate("sent_at", 3.1)
    polled = await connector.status(subject, external_id)
    assert polled.status == "pending" and "reminded" in (polled.message or "")
    [reminder] = reminders()
    assert reminder["In-Reply-To"] == asked["Message-ID"]
    assert reminder["To"] == "Privacy team <privacy@surveys.example>"
    assert _LINK.search(text_of(reminder)).group(1) == _LINK.search(text_of(asked)).group(1)  # same link
    assert (await connector.status(subject, external_id)).status == "pending"
    assert len(reminders()) == 1  # not again until reminder_days after the reminder

    await backdate("last_reminded_at", 3.1)
    await connector.status(subject, external_id)
    assert len(reminders()) == 2
    assert len({m["Message-ID"] for m in reminders()}) == 2

    await pool.execute("UPDATE manual_tasks SET confirmed_at = now() WHERE external_id = $1", external_id)
    await backdate("last_reminded_at", 10)
    assert (await connector.status(subject, external_id)).status == "done"
    assert len(reminders()) == 2
    assert len(letters_for(mail_sink, rid, "processor_request")) == 1

    # A legal-claims hold on the processor's categories: no erasure request goes out, and all it
    # holds is kept under the hold (the letter says so; it is asked when the hold ends).
    hold = LegalClaimsHold(id="hold-1", categories=("website_functionality",), basis="claim",
                           review_date=date(2030, 1, 1))
    held = await connector.erase(subject, ErasureContext(today=date.today(), legal_holds=(hold,)))
    assert held.status == "done" and held.message == "kept under a legal-claims hold"
    assert [(h.dataset, h.key, h.hold_kind, h.hold_ref) for h in held.held] == [("all", "all", "legal_claims", "hold-1")]
    assert await pool.fetchval("SELECT count(*) FROM manual_tasks WHERE request_id = $1 AND action = 'erase'", rid) == 0

    # Access reads nothing here: the processor uploads its export (tests/test_processor_exports.py).
    assert [r async for r in connector.access(subject)] == []
    await connector.close()


async def test_a_confirmation_while_temporal_is_unreachable_is_answered_503_and_a_repeat_completes(
        stack, pool, dev_server, mail_sink):
    """The processor confirms while the workflow engine cannot be reached: the confirmation is
    stored but the task cannot be told, so the answer is 503 (not a silent wait for the task's next
    poll, hours away); the page's repeat tells the task, which completes."""
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
            "identity_attested": True, "type": "erasure", "subject": {"email": "grace@example.com"}})
        rid = r.json()["id"]
        _, token = _LINK.search(text_of(await wait_for_letter(mail_sink, rid, "processor_request", 60))).groups()

        async def asked() -> bool:
            # The letter is in the mailbox a moment before its manual_tasks row (recorded once the
            # relay accepted it), which the confirmation looks up.
            return bool(await pool.fetchval("SELECT count(*) FROM system_tasks WHERE request_id = $1 "
                                            "AND system = 'surveys' AND status = 'pending'", rid)) and \
                bool(await pool.fetchval("SELECT count(*) FROM manual_tasks WHERE external_id = $1",
                                         hashlib.sha256(token.encode()).hexdigest()))

        await eventually(asked)
        nowhere = stack.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
        async with api_client(nowhere, None, stack.settings.task_queue) as cut_off:
            first = await cut_off.post(f"/v1/callbacks/manual/{token}", data={"note": "done"})
        assert first.status_code == 503, first.text
        assert await pool.fetchval("SELECT confirmed_at FROM manual_tasks WHERE external_id = $1",
                                   external_id_for(token)) is not None

        again = await http.post(f"/v1/callbacks/manual/{token}", data={"note": "done"})
        assert again.status_code == 200, again.text
        state = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
    assert state["status"] == "completed"
    assert {r["system"]: r["status"] for r in state["results"]}["surveys"] == "done"
