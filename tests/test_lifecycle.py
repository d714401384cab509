"""The life of a request on virtual time: deadlines, warnings, verification, extension, denial."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta

from temporalio import activity

from activities.letters import deliver_letter
from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy, parse_policy
from schemas.requests import NewRequest
from schemas.workflow import LetterJob, LetterReceipt, StartRequest, workflow_id_for
from tests.conftest import raw_client
from tests.support import api_client, letters_for, staff_headers, text_of, wait_for_letter
from workers.dsr_worker import activity_context, build_worker
from workflows.dsr import DataSubjectRequestWorkflow


def _policy(settings, **verification):
    """The tests' policy, with verification numbers changed for a test."""
    content = load_policy(settings.policy_path).content
    return parse_policy({**content, "verification": {**content["verification"], **verification}})


async def _open(env, pool, task_queue, settings, *, loaded=None, received_at=None, attested=False,
                request_type="erasure") -> str:
    """Store a request received now on the virtual clock (or at `received_at`) and start it."""
    client = env.client
    received_at = received_at or await env.get_current_time()
    loaded = loaded or load_policy(settings.policy_path)
    new = NewRequest(type=request_type, subject={"email": f"s{uuid.uuid4().hex[:6]}@example.com"},
                     identity_attested=attested)
    row, _ = await create_request(pool, new, loaded_policy=loaded, secret=load_secret_key(settings), actor="test", idempotency_key=None)
    rid = str(row["id"])
    await pool.execute("UPDATE dsr_requests SET received_at = $2 WHERE id = $1", rid, received_at)
    await client.start_workflow(
        DataSubjectRequestWorkflow.run, StartRequest(request_id=rid, policy_version=loaded.version),
        id=workflow_id_for(rid), task_queue=task_queue,
    )
    return rid


async def _state(client, rid):
    return await client.get_workflow_handle(workflow_id_for(rid)).query(DataSubjectRequestWorkflow.state)


async def _skip_to(env, instant: datetime) -> None:
    now = await env.get_current_time()
    if instant > now:
        await env.sleep(instant - now)


def _code(message) -> str:
    return re.search(r"\b(\d{6})\b", text_of(message)).group(1)


async def test_gdpr_clock_from_31_january(settings, pool, time_skipping, mail_sink, task_queue):
    """Received 31 Jan 2027 10:00 Brussels: +1 month is Sun 28 Feb -> due Mon 1 Mar 2027;
    extension is 30 Apr 2027 (a Friday). Warnings at the start of 22 and 27 Feb, overdue when
    1 March ends; the subject never verifies (a long window keeps the request open)."""
    env, client = time_skipping, time_skipping.client
    received = datetime(2027, 1, 31, 9, 0, tzinfo=UTC)
    await _skip_to(env, received)
    loaded = _policy(settings, expires_after_days=60, reminder_after_days=40)
    async with build_worker(client, settings, pool, task_queue=task_queue):
        rid = await _open(env, pool, task_queue, settings, loaded=loaded, received_at=received)
        await wait_for_letter(mail_sink, rid, "verification")
        state = await _state(client, rid)
        assert (state.due_date, state.extended_due_date) == (date(2027, 3, 1), date(2027, 4, 30))
        row = await pool.fetchrow("SELECT due_date, current_due_date FROM dsr_requests WHERE id = $1", rid)
        assert (row["due_date"], row["current_due_date"]) == (date(2027, 3, 1), date(2027, 3, 1))

        def alerts():
            return [m["Subject"] for m in letters_for(mail_sink, rid, "staff_alert")]

        await _skip_to(env, datetime(2027, 2, 21, 22, 0, tzinfo=UTC))  # 23:00 Brussels on 21 Feb
        assert alerts() == [] and (await _state(client, rid)).warnings_sent == []
        await _skip_to(env, datetime(2027, 2, 21, 23, 1, tzinfo=UTC))  # 00:01 on 22 Feb
        message = await wait_for_letter(mail_sink, rid, "staff_alert")
        assert "7 days" in message["Subject"]
        assert message["To"] == "privacy@onetagger.com"
        assert "@example.com" not in message.as_string()  # staff alerts carry no subject data

        await _skip_to(env, datetime(2027, 2, 26, 23, 1, tzinfo=UTC))
        await _wait_until(lambda: len(alerts()) == 2)
        assert (await _state(client, rid)).warnings_sent == [7, 2]
        assert not (await _state(client, rid)).overdue

        await _skip_to(env, datetime(2027, 3, 1, 22, 59, tzinfo=UTC))  # 23:59 on the due date
        assert not (await _state(client, rid)).overdue
        await _skip_to(env, datetime(2027, 3, 1, 23, 1, tzinfo=UTC))
        await _wait_until(lambda: len(alerts()) == 3)
        assert "overdue" in alerts()[-1].lower()
        assert (await _state(client, rid)).overdue
        events = [r["event_type"] for r in await pool.fetch(
            "SELECT event_type FROM audit_events WHERE request_id = $1 ORDER BY seq", rid)]
        assert events.count("deadline.due_in_7_days") == 1
        assert events.count("deadline.due_in_2_days") == 1
        assert events.count("deadline.overdue") == 1
        await client.get_workflow_handle(workflow_id_for(rid)).terminate("test over")


async def _wait_until(predicate, timeout: float = 20) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.1)


async def test_verification_right_code_completes(settings, pool, time_skipping, mail_sink, task_queue, caplog):
    client = time_skipping.client
    async with build_worker(client, settings, pool, task_queue=task_queue):
        async with api_client(settings, client, task_queue) as http:
            r = await http.post("/v1/public/requests", json={"type": "access", "email": "lin@example.com"})
            assert r.status_code == 202, r.text
            rid = r.json()["id"]
            code = _code(await wait_for_letter(mail_sink, rid, "verification"))
            wrong = f"{(int(code) + 1) % 10**6:06d}"
            r = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": wrong})
            assert r.status_code == 400 and r.json()["attempts_left"] == 4
            r = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code})
            assert r.status_code == 200 and r.json()["verified"] is True
            await wait_for_letter(mail_sink, rid, "response")
            state = await client.get_workflow_handle(workflow_id_for(rid)).result()
            assert state["status"] == "completed"
            assert state["verification"]["method"] == "email_code"

    # The code exists only in the e-mail: not in Temporal's history, the database or the logs.
    history = await raw_client(time_skipping).get_workflow_handle(workflow_id_for(rid)).fetch_history()
    assert not any(code.encode() in e.SerializeToString() for e in history.events)
    for table in ("dsr_requests", "sent_letters", "audit_events"):
        hits = await pool.fetchval(
            f"SELECT count(*) FROM {table} t WHERE t::text LIKE '%' || $1 || '%'", code)
        assert hits == 0, f"code found in {table}"
    assert code not in caplog.text


async def test_verification_by_link_token(settings, pool, time_skipping, mail_sink, task_queue):
    client = time_skipping.client
    async with build_worker(client, settings, pool, task_queue=task_queue):
        async with api_client(settings, client, task_queue) as http:
            rid = (await http.post("/v1/public/requests", json={"type": "erasure", "email": "k@example.com"})).json()["id"]
            token = re.search(r"token=([0-9a-f]{64})", text_of(await wait_for_letter(mail_sink, rid, "verification"))).group(1)
            r = await http.post(f"/v1/public/requests/{rid}/verify", json={"token": token})
            assert r.status_code == 200, r.text
            await wait_for_letter(mail_sink, rid, "response")


async def test_five_wrong_codes_lock(settings, pool, time_skipping, mail_sink, task_queue):
    client = time_skipping.client
    async with build_worker(client, settings, pool, task_queue=task_queue):
        async with api_client(settings, client, task_queue) as http:
            rid = (await http.post("/v1/public/requests", json={"type": "access", "email": "m@example.com"})).json()["id"]
            code = _code(await wait_for_letter(mail_sink, rid, "verification"))
            wrong = f"{(int(code) + 1) % 10**6:06d}"
            answers = [await http.post(f"/v1/public/requests/{rid}/verify", json={"code": wrong}) for _ in range(5)]
            assert [a.json()["attempts_left"] for a in answers] == [4, 3, 2, 1, 0]
            assert answers[-1].status_code == 423
            r = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code})
            assert r.status_code == 409 and "locked" in r.json()["detail"]
            # Staff can send a fresh code, which unlocks it; the old code no longer works.
            headers = await staff_headers(pool, "agent")
            r = await http.post(f"/v1/requests/{rid}/resend-verification", headers=headers)
            assert r.status_code == 200, r.text
            await _wait_until(lambda: len(letters_for(mail_sink, rid, "verification")) == 2)
            new_code = _code(letters_for(mail_sink, rid, "verification")[-1])
            if new_code != code:  # an earlier e-mail's code: refused as such, no attempt spent
                old = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code})
                assert old.status_code == 410 and old.json()["earlier_code"] is True
            assert (await http.post(f"/v1/public/requests/{rid}/verify", json={"code": new_code})).status_code == 200


async def test_unverified_request_is_reminded_then_closed(settings, pool, time_skipping, mail_sink, task_queue):
    env, client = time_skipping, time_skipping.client
    async with build_worker(client, settings, pool, task_queue=task_queue):
        rid = await _open(env, pool, task_queue, settings)
        await wait_for_letter(mail_sink, rid, "verification")
        await env.sleep(timedelta(days=1, hours=23))
        assert letters_for(mail_sink, rid, "reminder") == []
        await env.sleep(timedelta(hours=2))  # two days after the first code
        reminder = await wait_for_letter(mail_sink, rid, "reminder")
        await env.sleep(timedelta(days=4, hours=21))
        assert letters_for(mail_sink, rid, "closed_unverified") == []
        await env.sleep(timedelta(hours=3))  # seven days after receipt
        await wait_for_letter(mail_sink, rid, "closed_unverified")
        state = await client.get_workflow_handle(workflow_id_for(rid)).result()
    assert state["status"] == "closed_unverified"
    assert len(letters_for(mail_sink, rid, "reminder")) == 1
    assert (await pool.fetchval("SELECT status FROM dsr_requests WHERE id = $1", rid)) == "closed_unverified"
    # The reminder carried a new code, replacing the first one.
    assert _code(letters_for(mail_sink, rid, "verification")[0]) != _code(reminder)


async def test_extension_once_before_due_date(settings, pool, time_skipping, mail_sink, task_queue):
    env, client = time_skipping, time_skipping.client
    async with build_worker(client, settings, pool, task_queue=task_queue):
        async with api_client(settings, client, task_queue) as http:
            compliance = await staff_headers(pool, "compliance")
            rid = await _open(env, pool, task_queue, settings, loaded=_policy(settings, expires_after_days=120))
            await wait_for_letter(mail_sink, rid, "verification")
            reason = "Your request covers nine years of support history across several systems."
            r = await http.post(f"/v1/requests/{rid}/extend", headers=compliance, json={"reason": reason})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["extended"] is True and body["current_due_date"] == body["extended_due_date"]
            letter = text_of(await wait_for_letter(mail_sink, rid, "extension"))
            assert reason in letter
            again = await http.post(f"/v1/requests/{rid}/extend", headers=compliance, json={"reason": reason})
            assert again.status_code == 409 and "already been extended" in again.json()["detail"]
            assert len(letters_for(mail_sink, rid, "extension")) == 1

            # Another request whose first due date has passed cannot be extended any more.
            late = await _open(env, pool, task_queue, settings, loaded=_policy(settings, expires_after_days=120))
            await wait_for_letter(mail_sink, late, "verification")
            state = await _state(client, late)
            await _skip_to(env, datetime.combine(state.due_date + timedelta(days=2), datetime.min.time(), UTC))
            r = await http.post(f"/v1/requests/{late}/extend", headers=compliance, json={"reason": reason})
            assert r.status_code == 409 and "has passed" in r.json()["detail"]
            for request_id in (rid, late):
                await client.get_workflow_handle(workflow_id_for(request_id)).terminate("test over")


async def test_denial_letter_names_the_authority_and_remedies(settings, pool, time_skipping, mail_sink, task_queue):
    env, client = time_skipping, time_skipping.client
    async with build_worker(client, settings, pool, task_queue=task_queue):
        async with api_client(settings, client, task_queue) as http:
            rid = await _open(env, pool, task_queue, settings)
            await wait_for_letter(mail_sink, rid, "verification")
            r = await http.post(f"/v1/requests/{rid}/deny", headers=await staff_headers(pool),
                                json={"reason_code": "manifestly_unfounded",
                                      "explanation": "The same request was answered in full last week."})
            assert r.status_code == 200 and r.json()["status"] == "denied"
            text = text_of(await wait_for_letter(mail_sink, rid, "denial"))
            assert "Gegevensbeschermingsautoriteit" in text
            assert "Drukpersstraat 35" in text
            assert "judicial remedy" in text
            assert "answered in full last week" in text
            state = await client.get_workflow_handle(workflow_id_for(rid)).result()
            assert state["status"] == "denied"
            r = await http.post(f"/v1/requests/{rid}/cancel", headers=await staff_headers(pool), json={"reason": "late"})
            assert r.status_code == 409


async def test_letter_retried_after_sending_is_sent_once(settings, pool, time_skipping, mail_sink, task_queue):
    """The activity sends, then fails (as if the worker died before reporting); the retry must not
    send the letter again."""
    ctx = activity_context(settings, pool)
    tried: set[str] = set()

    @activity.defn(name="send_letter")
    async def send_then_fail(job: LetterJob) -> LetterReceipt:
        receipt = await deliver_letter(ctx, job)
        if receipt.letter_key not in tried:  # each letter's first try
            tried.add(receipt.letter_key)
            raise RuntimeError("worker lost after SMTP accepted the message")
        return receipt

    env, client = time_skipping, time_skipping.client
    async with build_worker(client, settings, pool, task_queue=task_queue, activity_overrides=[send_then_fail]):
        rid = await _open(env, pool, task_queue, settings, attested=True)
        await client.get_workflow_handle(workflow_id_for(rid)).result()
    assert len(letters_for(mail_sink, rid, "acknowledgement")) == 1
    assert len(letters_for(mail_sink, rid, "response")) == 1
    ids = {m["Message-ID"] for m in letters_for(mail_sink, rid)}
    assert len(ids) == len(letters_for(mail_sink, rid))
