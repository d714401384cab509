"""A restriction of processing has a lifecycle (Art. 18 GDPR): in force with its ground shown, kept
from the controller's own erasures under 18(1)(c), and ended only by compliance's explicit lift,
which the subject is told of before any system is lifted (18(3)), and which reaches every system."""

from __future__ import annotations

import asyncio
import html
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from activities.restrictions import lift_letter_context
from activities.retention_plan import current_policy, describe, plan_retention
from devstack.demo.subjects import demo_subjects
from dsrflow.domain.references import short_reference
from dsrflow.stores.requests_store import get_request
from dsrflow.stores.restrictions_store import keeping_from_erasure, restricted_elsewhere
from policy.model import load_policy
from schemas.holds import SweepInput
from schemas.retention import RetentionSweepInput
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.hold_release import release_over_rest
from tests.support import (
    assert_problem,
    console_sign_in,
    fetch_rows,
    letters_for,
    place_claims_hold,
    staff_headers,
    stored_request,
    text_of,
    wait_for_letter,
)
from workers.dsr_worker import activity_context, build_worker
from workflows.erasure_sweep import ErasureSweepWorkflow
from workflows.retention_sweep import RetentionSweepWorkflow

LIFT = {"reason": "The court case you needed the records for was settled on 3 February."}


async def _until(check, timeout: float = 60):
    """The first truthy value of `check()` within `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.2)


async def _view(http, pool, rid: str) -> dict:
    r = await http.get(f"/v1/requests/{rid}", headers=await staff_headers(pool, "agent"))
    assert r.status_code == 200, r.text
    return r.json()


# A task's action as its staff alert names it.
_ACTION_WORDS = {"restrict": "restriction", "lift_restriction": "restriction lift"}


async def _resolve_email_task(http, pool, sink, rid: str, action: str) -> None:
    """The e-mail processor speaks OpenDSR, which has no restriction: staff are alerted (once per
    task, the restriction's and the lift's) and tell it by hand."""
    async def alerted() -> bool:
        said = f"The {_ACTION_WORDS[action]} task in our e-mail marketing system needs staff"
        return any(said in " ".join(text_of(m).split()) for m in letters_for(sink, rid, "staff_alert"))

    assert await _until(alerted), [text_of(m) for m in letters_for(sink, rid, "staff_alert")]
    r = await http.post(f"/v1/requests/{rid}/resolve-task", headers=await staff_headers(pool, "compliance"),
                        json={"system": "email_marketing", "note": "Told the e-mail processor by phone, ticket 12"})
    assert r.status_code == 200, r.text


async def _restrict(http, pool, mail_sink, email: str, grounds: list[str]) -> str:
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "restriction", "restriction_grounds": grounds, "subject": {"email": email},
        "identity_attested": True})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    await _resolve_email_task(http, pool, mail_sink, rid, "restrict")

    async def in_force() -> dict | None:
        view = await _view(http, pool, rid)
        return view if (view["restriction"] or {}).get("status") == "active" else None

    view = await _until(in_force)
    assert view and view["status"] == "completed", view
    return rid


async def _events(pool, rid: str) -> list[dict]:
    rows = await pool.fetch("SELECT seq, event_type, actor, data FROM audit_events WHERE request_id = $1 ORDER BY seq", rid)
    return [dict(r) for r in rows]


async def test_restriction_is_shown_kept_from_retention_and_lifted_only_as_told(postgres, settings, pool, dev_server, tmp_path, mail_sink):
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        analytics = stack.databases["analytics"]
        cutoff = datetime.now(UTC) - relativedelta(months=12)
        old_logs = ("SELECT count(*) AS n FROM page_events WHERE user_id = 'C-000002' AND occurred_at < $1 "
                    "AND ip IS NOT NULL AND device_id IS NOT NULL")
        restricted = "SELECT restricted FROM users WHERE email = 'tracked@example.com'"
        tracked_old = (await fetch_rows(analytics, old_logs, cutoff))[0]["n"]
        assert tracked_old > 0

        async def sweep_web_logs():
            return (await dev_server.client.execute_workflow(
                RetentionSweepWorkflow.run, RetentionSweepInput(reason="test", rules=["web_logs"]),
                id=f"retention-logs-{uuid.uuid4().hex[:6]}", task_queue=stack.settings.task_queue)).rules[0]

        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            compliance = await staff_headers(pool, "compliance")
            rid = await _restrict(http, pool, mail_sink, "tracked@example.com", ["needed_for_legal_claims"])

            # The ground, the systems reached and since when: on the request and in the list.
            view = await _view(http, pool, rid)
            assert view["restriction"]["grounds"] == ["needed_for_legal_claims"]
            assert "analytics" in view["restriction"]["systems"] and view["restriction"]["keeps_from_erasure"]
            listed = (await http.get("/v1/restrictions", params={"active": "true"}, headers=compliance)).json()
            assert rid in {item["request_id"] for item in listed["items"]}
            assert [r["restricted"] for r in await fetch_rows(analytics, restricted)] == [True]

            # Under 18(1)(c) the retention sweep leaves the subject's expired logs, and says why.
            logs = await sweep_web_logs()
            assert logs.held >= tracked_old
            assert (await fetch_rows(analytics, old_logs, cutoff))[0]["n"] == tracked_old
            kept = [e for e in await _events(pool, rid) if e["event_type"] == "restriction.kept_from_erasure"]
            assert kept and kept[0]["data"]["rule"] == "web_logs" and kept[0]["data"]["records"] == tracked_old
            # `dsrflow retention plan` counts them as left alone, in words true of a subject under no hold.
            ctx = activity_context(stack.settings, pool)
            loaded, now = current_policy(ctx), datetime.now(UTC)
            said = describe(await plan_retention(ctx, loaded, now, ["web_logs"]), now, loaded)
            assert "row(s) under a legal-claims hold or a restriction that keeps them from erasure" in said, said

            # Lifting needs compliance and a reason.
            no_reason = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=compliance, json={})
            assert "reason" in str(assert_problem(no_reason, 422))
            agent = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=await staff_headers(pool, "agent"), json=LIFT)
            assert agent.status_code == 403
            assert (await _view(http, pool, rid))["restriction"]["status"] == "active"

            r = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=compliance, json=LIFT)
            assert r.status_code == 200, r.text
            # The subject's letter is out when the call returns, before any system is lifted.
            letter = await wait_for_letter(mail_sink, rid, "restriction_lift", timeout=5)
            body = text_of(letter)
            assert letter["X-DSR-Purpose"] == "restriction_lift"
            assert "Article 18(3)" in body and LIFT["reason"] in body and "legal claims" in body
            assert "The restriction ends today" in body
            # An Art. 19 recipient the lift will reach, named by who it is (the policy knows it), as the
            # response named it; before, by the kind of service ("Google Analytics (Google)").
            assert "Google Ireland Limited" in body and "Google Analytics (Google)" not in body
            twice = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=compliance, json=LIFT)
            assert "already being lifted" in assert_problem(twice, 409)["detail"]

            await _resolve_email_task(http, pool, mail_sink, rid, "lift_restriction")
            result = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
            assert result["status"] == "completed"
            lifted = {t["system"]: t["status"] for t in result["results"] if t["action"] == "lift_restriction"}
            assert lifted.keys() == {"crm", "analytics", "billing", "email_marketing"}, result["results"]
            assert [r["restricted"] for r in await fetch_rows(analytics, restricted)] == [False]

            events = await _events(pool, rid)
            told = next(e["seq"] for e in events if e["event_type"] == "letter.sent" and e["data"]["purpose"] == "restriction_lift")
            lift_tasks = [e["seq"] for e in events if e["event_type"].startswith("task.") and e["data"].get("action") == "lift_restriction"]
            assert lift_tasks and told < min(lift_tasks)
            done = next(e for e in events if e["event_type"] == "restriction.lifted")
            assert set(done["data"]["systems"]) == set(lifted) and done["actor"].startswith("compliance")
            assert "google_analytics" in done["data"]["recipients"]
            assert len(letters_for(mail_sink, rid, "restriction_lift")) == 1
            view = await _view(http, pool, rid)
            assert view["restriction"]["status"] == "lifted" and view["restriction"]["lift_reason"] == LIFT["reason"]
            after = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=compliance, json=LIFT)
            assert_problem(after, 409)

            # Lifted: the next sweep clears the logs it kept.
            await sweep_web_logs()
            assert (await fetch_rows(analytics, old_logs, cutoff))[0]["n"] == 0


async def test_deferred_erasure_leaves_what_a_legal_claims_restriction_keeps(postgres, settings, pool, dev_server, tmp_path, mail_sink):
    """Grace's CRM records, kept under a legal-claims hold when she was erased, would go when the
    hold is released; her restriction under 18(1)(c) keeps them until it is lifted."""
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        crm = stack.databases["crm"]
        contacts = "SELECT count(*) AS n FROM contacts WHERE email = 'grace@example.com'"
        hold = await place_claims_hold(pool, stack.settings, "grace@example.com", ["crm"])
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            compliance = await staff_headers(pool, "compliance")
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "erasure", "subject": {"email": "grace@example.com"}, "identity_attested": True})
            erasure = r.json()["id"]
            await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(erasure)).result(), 90)
            kept = (await fetch_rows(crm, contacts))[0]["n"]
            assert kept > 0

            rid = await _restrict(http, pool, mail_sink, "grace@example.com", ["needed_for_legal_claims"])
            r = await release_over_rest(http, hold['id'], headers=compliance)
            assert r.status_code in (202, 204), r.text

            async def kept_by_restriction() -> list[dict]:
                return [e for e in await _events(pool, rid) if e["event_type"] == "restriction.kept_from_erasure"]

            audited = await _until(kept_by_restriction)
            assert audited and audited[0]["data"]["by"] == "deferred erasure" and audited[0]["data"]["records"] > 0
            assert (await fetch_rows(crm, contacts))[0]["n"] == kept

            r = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=compliance, json=LIFT)
            assert r.status_code == 200, r.text
            await _resolve_email_task(http, pool, mail_sink, rid, "lift_restriction")
            await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
            report = await dev_server.client.execute_workflow(
                ErasureSweepWorkflow.run, SweepInput(reason="test"), id=f"sweep-{rid}",
                task_queue=stack.settings.task_queue)
            assert report.erased > 0
            assert (await fetch_rows(crm, contacts))[0]["n"] == 0


async def test_a_restriction_under_way_keeps_the_records_before_it_is_on_record(postgres, settings, pool, dev_server,
                                                                                tmp_path, mail_sink):
    """The restriction's request waits for a processor (here the e-mail processor, which needs
    staff) after the analytics system has restricted the records: the request is not complete, so
    the restriction is not yet on record, and the retention sweep still leaves the subject's
    expired logs. Before, a restriction protected nothing until its request completed (days, with a
    processor asked by e-mail), and records kept for a legal claim were lost meanwhile."""
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        analytics = stack.databases["analytics"]
        cutoff = datetime.now(UTC) - relativedelta(months=12)
        old_logs = ("SELECT count(*) AS n FROM page_events WHERE user_id = 'C-000002' AND occurred_at < $1 "
                    "AND ip IS NOT NULL AND device_id IS NOT NULL")
        tracked_old = (await fetch_rows(analytics, old_logs, cutoff))[0]["n"]
        assert tracked_old > 0
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "restriction", "restriction_grounds": ["needed_for_legal_claims"],
                "subject": {"email": "tracked@example.com"}, "identity_attested": True})
            rid = r.json()["id"]

            async def restricted_and_waiting() -> bool:
                view = await _view(http, pool, rid)
                tasks = {t["system"]: t["status"] for t in view.get("results", [])}  # absent when the query missed its patience
                return (view["status"] == "in_progress" and tasks.get("analytics") == "done"
                        and tasks.get("email_marketing") == "needs_attention")

            assert await _until(restricted_and_waiting)
            assert (await _view(http, pool, rid))["restriction"] is None  # not on record yet
            logs = (await dev_server.client.execute_workflow(
                RetentionSweepWorkflow.run, RetentionSweepInput(reason="test", rules=["web_logs"]),
                id=f"retention-logs-{uuid.uuid4().hex[:6]}", task_queue=stack.settings.task_queue)).rules[0]
            assert logs.held >= tracked_old
            assert (await fetch_rows(analytics, old_logs, cutoff))[0]["n"] == tracked_old
            kept = [e for e in await _events(pool, rid) if e["event_type"] == "restriction.kept_from_erasure"]
            assert kept and kept[0]["data"]["records"] == tracked_old


async def test_a_completed_restriction_keeps_the_records_until_its_record_is_written(pool):
    """The request's status goes to completed first and the restriction's record is written after
    (a step that may fail and wait on staff): in between, the records were unprotected, and a
    retention or deferred erasure could take what the subject needs for a legal claim (crash
    audit). A restriction completed before restrictions were recorded at all keeps nothing. So
    too one closed part-way once a system restricted the records (its record waits for the tasks
    still running)."""
    async def completed(closed_days_ago: int) -> str:
        rid, email = str(uuid.uuid4()), f"gap.{uuid.uuid4().hex[:8]}@example.com"
        await pool.execute(
            """INSERT INTO dsr_requests (id, request_type, regime, country, channel, subject_email, received_at,
                                         status, policy_version, closed_at, details)
               VALUES ($1, 'restriction', 'gdpr', 'BE', 'api', $2, now(), 'completed', 'v1',
                       now() - make_interval(days => $3), '{"restriction_grounds": ["needed_for_legal_claims"]}')""",
            rid, email, closed_days_ago)
        return rid

    just_now, long_ago = await completed(0), await completed(400)
    # Withdrawn part-way, one system restricted: its record waits for the tasks still running
    # (workflows/restriction_lifecycle.py); withdrawn before any system restricted: nothing to keep.
    withdrawn, untouched = await completed(0), await completed(0)
    await pool.execute("UPDATE dsr_requests SET status = 'cancelled' WHERE id = ANY($1::uuid[])", [withdrawn, untouched])
    await pool.execute("INSERT INTO system_tasks (request_id, system, action, status) VALUES "
                       "($1, 'analytics', 'restrict', 'done'), ($2, 'analytics', 'restrict', 'pending')",
                       uuid.UUID(withdrawn), uuid.UUID(untouched))
    kept = {str(r["request_id"]) for r in await keeping_from_erasure(pool, ["needed_for_legal_claims"])}
    assert just_now in kept and long_ago not in kept
    assert withdrawn in kept and untouched not in kept
    assert just_now not in {str(r["request_id"]) for r in await keeping_from_erasure(pool, ["other_ground"])}


async def test_a_late_lift_letter_names_the_date_from_when_it_goes(pool, settings):
    """The lift was announced three days ago with 7 days' notice, and its letter has not gone
    (its step failed): rendered now, it names today + 7 days, and that is the date on record; once
    a lift letter went, a render (a retry) changes nothing. Before, it named the announcement's
    date + 7, four days away."""
    loaded = load_policy(settings.policy_path)
    policy = loaded.policy.model_copy(update={"restriction": loaded.policy.restriction.model_copy(
        update={"lift_notice_days": 7})})
    rid = await stored_request(pool, settings, "late-lift")  # its restriction row is all the letter reads
    await pool.execute(
        """INSERT INTO restrictions (request_id, subject_hash, grounds, systems, keeps_from_erasure, lift_reason,
                                     lift_requested_by, lift_requested_at, lift_effective_on)
           VALUES ($1, 'h', '{accuracy_contested}', '{crm}', false, 'verified', 'compliance:kim',
                   now() - interval '3 days', now() + interval '4 days')""", uuid.UUID(rid))
    ctx = activity_context(settings, pool)
    row = await get_request(pool, rid)
    today = datetime.now(ZoneInfo(policy.defaults.timezone)).date()
    assert (await lift_letter_context(ctx, row, policy))["lift_on"] == today + timedelta(days=7)
    recorded = await pool.fetchval("SELECT lift_effective_on FROM restrictions WHERE request_id = $1", uuid.UUID(rid))
    assert recorded.astimezone(ZoneInfo(policy.defaults.timezone)).date() == today + timedelta(days=7)

    await pool.execute("INSERT INTO sent_letters (letter_key, request_id, purpose, recipient, subject, message_id, "
                       "body_text, body_html) VALUES ($1, $2, 'restriction_lift', 'x', 's', 'm', 't', 'h')",
                       f"{rid}:restriction_lift:1", uuid.UUID(rid))
    await pool.execute("UPDATE restrictions SET lift_effective_on = lift_effective_on - interval '1 day' "
                       "WHERE request_id = $1", uuid.UUID(rid))
    assert (await lift_letter_context(ctx, row, policy))["lift_on"] == today + timedelta(days=6)


async def test_lifting_one_restriction_leaves_what_another_in_force_restricts(postgres, settings, pool, dev_server,
                                                                              tmp_path, mail_sink):
    """The subject restricted their data for a legal claim, then again while an objection was
    checked. Lifting the second (the objection decided) un-restricted the data in every system,
    the first restriction still in force. Now the lift leaves the systems the first restricts as
    they are, its letter says so naming the first, and their recipients are not told of an end;
    lifting the first then lifts them."""
    # A subject no other test restricts: the session's requests are shared, and another test's
    # restriction left in force would rightly keep the data restricted too.
    email = next(s.email for s in reversed(demo_subjects()) if s.in_analytics)
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        analytics = stack.databases["analytics"]
        restricted = f"SELECT restricted FROM users WHERE email = '{email}'"
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            compliance = await staff_headers(pool, "compliance")
            claims = await _restrict(http, pool, mail_sink, email, ["needed_for_legal_claims"])
            objection = await _restrict(http, pool, mail_sink, email, ["objection_pending"])

            async def lift(rid: str, by_hand: bool) -> tuple[str, dict]:
                r = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=compliance, json=LIFT)
                assert r.status_code == 200, r.text
                letter = " ".join(text_of(await wait_for_letter(mail_sink, rid, "restriction_lift", timeout=5)).split())
                if by_hand:  # the e-mail processor, told by staff (it has no restriction of its own)
                    await _resolve_email_task(http, pool, mail_sink, rid, "lift_restriction")
                handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))
                return letter, await asyncio.wait_for(handle.result(), 60)

            # Both systems the first restricts stay so: nobody is asked to lift anything there.
            said, result = await lift(objection, by_hand=False)
            assert [r["restricted"] for r in await fetch_rows(analytics, restricted)] == [True]
            reference = short_reference(claims)
            opening = f"This does not end your restriction {reference}, which is still in force: your personal data "
            assert opening in said, said
            still = said[said.index(opening):].split(" stays restricted until we lift that restriction too")[0]
            assert "in our website analytics" in still and "in our e-mail marketing system" in still, still
            assert "Google Ireland Limited" not in said
            held = {t["system"]: t for t in result["results"] if t["action"] == "lift_restriction"}
            assert all((held[s]["status"], held[s]["changed"]) == ("done", 0) and reference in held[s]["message"]
                       for s in ("analytics", "email_marketing")), held
            assert not any("restriction lift task" in text_of(m) for m in letters_for(mail_sink, objection, "staff_alert"))
            lifted = next(e for e in await _events(pool, objection) if e["event_type"] == "restriction.lifted")
            assert "analytics" in lifted["data"]["held"] and "google_analytics" not in lifted["data"]["recipients"]
            assert (await _view(http, pool, claims))["restriction"]["status"] == "active"
            await console_sign_in(http, pool, "compliance")  # the timeline says what the lift left, and why
            page = " ".join(html.unescape((await http.get(f"/console/requests/{objection}")).text).split())
            assert "Lift left a system restricted: another restriction holds it there" in page
            assert f"restriction {reference}" in page
            assert "Restriction lifted, but where another restriction of the subject is in force" in page

            said, _ = await lift(claims, by_hand=True)
            assert [r["restricted"] for r in await fetch_rows(analytics, restricted)] == [False]
            assert "This does not end your restriction" not in said and "Google Ireland Limited" in said


async def test_another_restriction_holds_a_system_by_the_subjects_address_or_customer_number(pool, settings):
    """Which of the subject's other restrictions hold a system against this one's lift
    (`restricted_elsewhere`): found by address or by customer number, as the systems find a
    subject; in force while its lift is not yet due; not another subject's."""
    number = f"C-{uuid.uuid4().hex[:8]}"
    first, second, stranger = [await stored_request(pool, settings, label, "restriction",
                                                    restriction_grounds=["needed_for_legal_claims"])
                               for label in ("first", "second", "stranger")]
    await pool.execute("UPDATE dsr_requests SET customer_id = $2 WHERE id = ANY($1::uuid[])", [first, second], number)
    for rid, systems in ((first, ["crm", "analytics"]), (stranger, ["billing"])):
        await pool.execute("INSERT INTO restrictions (request_id, subject_hash, grounds, systems, keeps_from_erasure) "
                           "VALUES ($1, 'h', '{needed_for_legal_claims}', $2, true)", uuid.UUID(rid), systems)
    async with pool.acquire() as conn:
        assert await restricted_elsewhere(conn, second) == {"crm": first, "analytics": first}
        await conn.execute("UPDATE restrictions SET lift_effective_on = now() + interval '7 days' WHERE request_id = $1",
                           uuid.UUID(first))
        assert await restricted_elsewhere(conn, second) == {"crm": first, "analytics": first}  # its lift not yet due
        await conn.execute("UPDATE restrictions SET lift_effective_on = now() - interval '1 minute' WHERE request_id = $1",
                           uuid.UUID(first))
        assert await restricted_elsewhere(conn, second) == {}  # due: both lifts lift
