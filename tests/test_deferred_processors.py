"""A processor we cannot ask record by record (OpenDSR, e-mail) is kept whole under a legal-claims
hold; once the hold ends it is asked to erase, and the deferred erasure is done only when the
processor confirms. Before, it was marked done the moment the processor was asked: a processor
that cancelled the job, or an e-mail processor whose confirmation link said "expired" (its request
was closed), left an erasure on record as done that never happened."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime

import httpx
from temporalio.testing import ActivityEnvironment

from activities.deferred import DeferredErasureActivities
from activities.deferred_processors import record_failure
from dsrflow.stores.holds_store import release_hold
from schemas.holds import SweepInput
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack_alone
from tests.hold_release import release_over_rest
from tests.process_support import sweep_killed_at
from tests.saas_support import http_system
from tests.support import (
    eventually,
    fetch_rows,
    letters_for,
    place_claims_hold,
    staff_headers,
    text_of,
    wait_for_letter,
)
from tests.test_saas_fanout import saas  # noqa: F401 (fixture)
from workers.dsr_worker import activity_context, build_worker
from workflows.erasure_sweep import ErasureSweepWorkflow

SURVEYS_CONTACT = "privacy@surveys.example"
_LINK = re.compile(r"(http://\S+/v1/callbacks/manual/[0-9a-f]{64})")


async def _kept(http: httpx.AsyncClient, pool, client, stack, email: str, system: str) -> tuple[str, dict]:
    """Erase `email` under a hold on `system`, and check the processor was kept whole."""
    hold = await place_claims_hold(pool, stack.settings, email, [system])
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                        json={"type": "erasure", "subject": {"email": email}, "identity_attested": True})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 90)
    assert state["status"] == "completed"
    kept = await pool.fetch("SELECT dataset, record_key, done_at FROM deferred_erasures WHERE request_id = $1 "
                            "AND system = $2", rid, system)
    assert [(k["dataset"], k["record_key"], k["done_at"]) for k in kept] == [("all", "all", None)]
    return rid, hold


async def _kept_then_released(http: httpx.AsyncClient, pool, client, stack, email: str, system: str) -> str:
    rid, hold = await _kept(http, pool, client, stack, email, system)
    released = await release_over_rest(http, hold['id'], headers=await staff_headers(pool, "compliance"))
    assert released.status_code == 204, released.text
    return rid


async def _row(pool, rid: str, system: str):
    return await pool.fetchrow("SELECT * FROM deferred_erasures WHERE request_id = $1 AND system = $2", rid, system)


async def _sweep_again(client, stack, pool, rid: str):
    subject = (await _row(pool, rid, "email_marketing"))["subject_hash"]
    return await client.execute_workflow(
        ErasureSweepWorkflow.run, SweepInput(subject_hash=subject, reason="test"), id=f"sweep-again-{rid}",
        task_queue=stack.settings.task_queue)


async def _events(pool, rid: str) -> list[str]:
    """The trail of a processor's deferred erasure (our own systems' erasures, `erasure.deferred_erased`,
    aside: the analytics database's, erased beside it by the same sweep)."""
    return [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM audit_events WHERE request_id = $1 AND event_type LIKE 'erasure.deferred_%' "
        "AND event_type <> 'erasure.deferred_erased' ORDER BY occurred_at", rid)]


async def test_an_opendsr_processor_is_done_when_it_confirms_not_when_asked(postgres, settings, dev_server,
                                                                           tmp_path, mail_sink):
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "deferred_processors",
                                  email_delay=3) as (stack, pool):
        marketing = stack.databases["email_marketing"]
        subscribed = "SELECT 1 FROM subscribers WHERE email = 'ada@example.com'"
        assert await fetch_rows(marketing, subscribed)
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            rid = await _kept_then_released(http, pool, dev_server.client, stack, "ada@example.com", "email_marketing")
            assert await fetch_rows(marketing, subscribed)  # the hold kept the subscriber

            async def asked() -> bool:
                return (await _row(pool, rid, "email_marketing"))["submitted_at"] is not None

            await eventually(asked)
            row = await _row(pool, rid, "email_marketing")
            assert row["done_at"] is None  # asked is not erased: the processor has 3 s to go
            jobs = await fetch_rows(marketing, "SELECT subject_request_id::text AS id, subject_request_type "
                                               "FROM dsr_requests WHERE subject_request_id::text = $1",
                                    row["external_id"])
            assert [j["subject_request_type"] for j in jobs] == ["erasure"]

            # Its completion callback runs the sweep for the subject, which asks and records it.
            async def confirmed() -> bool:
                return (await _row(pool, rid, "email_marketing"))["done_at"] is not None

            await eventually(confirmed)
            assert await fetch_rows(marketing, subscribed) == []
            assert await _events(pool, rid) == ["erasure.deferred_submitted", "erasure.deferred_confirmed"]
            evidence = (await http.get(f"/v1/requests/{rid}/evidence",
                                       headers=await staff_headers(pool, "compliance"))).json()
            scheduled = next(e for e in evidence["holds"]["deferred_erasures"] if e["system"] == "email_marketing")
            assert (scheduled["erased_since"], scheduled["awaiting_processor"], scheduled["failure"]) == (1, 0, None)

            # A later sweep has nothing left to ask.
            report = await _sweep_again(dev_server.client, stack, pool, rid)
            assert (report.processors_confirmed, report.processors_waiting, report.processors_failed) == (0, 0, 0)


async def test_a_processor_that_cancels_is_a_failure_and_an_alert(postgres, settings, dev_server,
                                                                 tmp_path, mail_sink):
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "deferred_processors",
                                  email_delay=600) as (stack, pool):
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            rid = await _kept_then_released(http, pool, dev_server.client, stack, "ada@example.com", "email_marketing")

            async def asked() -> bool:
                return (await _row(pool, rid, "email_marketing"))["submitted_at"] is not None

            await eventually(asked)
            job = (await _row(pool, rid, "email_marketing"))["external_id"]
            # The processor cancels the job; its signed callback says so.
            async with httpx.AsyncClient() as processor:
                assert (await processor.delete(f"{stack.email_url}/requests/{job}")).status_code == 202

            async def failed() -> bool:
                return (await _row(pool, rid, "email_marketing"))["failed_at"] is not None

            await eventually(failed)
            row = await _row(pool, rid, "email_marketing")
            assert row["done_at"] is None and "cancelled" in row["failure"]
            assert await _events(pool, rid) == ["erasure.deferred_submitted", "erasure.deferred_failed"]
            alert = await wait_for_letter(mail_sink, rid, "staff_alert")
            body = " ".join(text_of(alert).split())
            assert "E-mail marketing (newsletters) was asked to erase" in body and "cancelled" in body
            assert "ada@example.com" not in body  # a staff alert carries no personal data
            evidence = (await http.get(f"/v1/requests/{rid}/evidence.html",
                                       headers=await staff_headers(pool, "compliance")))
            assert "the processor did not erase" in evidence.text

            # Failed stays failed: no sweep asks again, and the alert went once.
            report = await _sweep_again(dev_server.client, stack, pool, rid)
            assert report.processors_failed == 0
            assert len(letters_for(mail_sink, rid, "staff_alert")) == 1

            # Compliance, whom the alert sends to the request, asks the processor again: a new job.
            await _asked_again_then_settled(http, pool, mail_sink, stack, rid, job, asked, failed)


async def _listed(http, url: str, headers: dict) -> dict:
    listed = await http.get(url, headers=headers)
    assert listed.status_code == 200, listed.text
    return next(d for d in listed.json() if d["system"] == "email_marketing")


async def _asked_again_then_settled(http, pool, mail_sink, stack, rid: str, job: str, asked, failed) -> None:
    url = f"/v1/requests/{rid}/deferred-erasures"
    agent, compliance = await staff_headers(pool, "agent"), await staff_headers(pool, "compliance")
    assert (await http.get(url, headers=agent)).status_code == 403  # it names the hold: compliance's
    assert (await http.post(f"{url}/email_marketing/retry", headers=agent)).status_code == 403
    listed = await _listed(http, url, compliance)
    assert (listed["states"], listed["attempt"], listed["actions"]) == ({"failed": 1}, 1, ["retry", "settle"])
    assert "cancelled" in listed["failure"]
    assert (await http.post(f"{url}/no_such_system/retry", headers=compliance)).status_code == 404

    retried = await http.post(f"{url}/email_marketing/retry", headers=compliance)
    assert retried.status_code == 202 and retried.json() == {"system": "email_marketing", "asked_now": True}
    await eventually(asked)
    row = await _row(pool, rid, "email_marketing")
    assert (row["attempt"], row["failed_at"], row["failure"]) == (2, None, None)
    assert row["external_id"] != job  # the cancelled job cannot run again: a new one
    again = await http.post(f"{url}/email_marketing/retry", headers=compliance)
    assert again.status_code == 409 and "asked" in again.json()["detail"]  # under way: nothing to ask

    # The processor cancels this one too: a second failure, and a second alert.
    async with httpx.AsyncClient() as processor:
        assert (await processor.delete(f"{stack.email_url}/requests/{row['external_id']}")).status_code == 202
    await eventually(failed)

    async def second_alert() -> bool:  # sent once the failure is on record: a loaded machine lags
        return len(letters_for(mail_sink, rid, "staff_alert")) >= 2

    await eventually(second_alert, 30)
    assert len(letters_for(mail_sink, rid, "staff_alert")) == 2

    # Staff had it deleted by other means: recorded, with the note that says how, in the evidence.
    assert (await http.post(f"{url}/email_marketing/settle", headers=compliance,
                            json={"note": ""})).status_code == 422
    note = "Their DPO deleted the subscriber by hand and confirmed it in writing on 4 December."
    settled = await http.post(f"{url}/email_marketing/settle", headers=compliance, json={"note": note})
    assert settled.status_code == 200, settled.text
    row = await _row(pool, rid, "email_marketing")
    assert row["done_at"] is not None and row["settled_by"].startswith("compliance:")
    assert (await http.post(f"{url}/email_marketing/settle", headers=compliance,
                            json={"note": note})).status_code == 409  # once
    assert await _events(pool, rid) == [
        "erasure.deferred_submitted", "erasure.deferred_failed", "erasure.deferred_retried",
        "erasure.deferred_submitted", "erasure.deferred_failed", "erasure.deferred_settled"]
    listed = await _listed(http, url, compliance)
    assert (listed["states"], listed["actions"]) == ({"settled": 1}, [])
    evidence = (await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text
    assert "asked 2 times" in evidence and "recorded as erased by other means" in evidence
    assert settled.json()["note_id"] in evidence and note in evidence


async def test_an_email_processor_confirms_a_deferred_erasure_on_its_link(postgres, settings, dev_server,
                                                                         tmp_path, mail_sink, monkeypatch):
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "deferred_processors",
                                  keep_manual=("surveys",)) as (stack, pool):
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            rid = await _kept_then_released(http, pool, dev_server.client, stack, "grace@example.com", "surveys")
            asked = await wait_for_letter(mail_sink, rid, "processor_request", timeout=60)
            assert asked["To"] == "Privacy team <privacy@surveys.example>"
            link = _LINK.search(text_of(asked)).group(1).removeprefix(stack.api_url)

            async def asked_on_record() -> bool:  # the e-mail's task row, not only the message in the sink
                return (await _row(pool, rid, "surveys"))["submitted_at"] is not None

            await eventually(asked_on_record)

            # The request closed long ago and its task was settled as kept: the link still answers.
            page = await http.get(link)
            assert page.status_code == 200 and '<form method="post">' in page.text, page.text
            assert (await _row(pool, rid, "surveys"))["done_at"] is None
            done = await http.post(link, data={"note": "Removed from our panel."})
            assert done.status_code == 200 and "confirmation recorded" in done.text, done.text

            async def confirmed() -> bool:
                return (await _row(pool, rid, "surveys"))["done_at"] is not None

            await eventually(confirmed)
            assert await _events(pool, rid) == ["erasure.deferred_submitted", "erasure.deferred_confirmed"]
            # Once done, the link records nothing more.
            again = await http.post(link, data={"note": "twice"})
            assert "already" in again.text.lower()
            # A sweep that read the rows as asked, before the confirmation, and heard of no erasure
            # since: its failure, late, neither alerts staff nor marks the erasure failed.
            # (What the sweep reads of them: their ids, attempt and policy version, unchanged.)
            as_read = await pool.fetch("SELECT * FROM deferred_erasures WHERE request_id = $1 AND system = 'surveys'",
                                       rid)
            await record_failure(activity_context(stack.settings, pool), rid, "surveys", as_read,
                                 "no confirmation within 14 days", asked=True)
            row = await _row(pool, rid, "surveys")
            assert row["done_at"] is not None and row["failed_at"] is None
            assert "erasure.deferred_failed" not in await _events(pool, rid)
            assert letters_for(mail_sink, rid, "staff_alert") == []


async def test_a_sweep_killed_after_asking_the_processor_asks_once_and_follows_it(postgres, settings, dev_server, tmp_path):
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "deferred_processors",
                                  email_delay=2) as (stack, pool):
        marketing = stack.databases["email_marketing"]
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            rid, hold = await _kept(http, pool, dev_server.client, stack, "ada@example.com", "email_marketing")
        async with pool.acquire() as conn:  # released with no worker to sweep: the killed process will
            await release_hold(conn, hold["id"], "compliance:test", reason="Claim settled")

        await sweep_killed_at(stack.settings, "deferred-processor-asked~email_marketing", datetime.now(UTC))
        row = await _row(pool, rid, "email_marketing")
        # The processor was asked; our rows know the job's id, not yet that it was asked.
        assert row["external_id"] and row["submitted_at"] is None and row["done_at"] is None
        jobs = "SELECT count(*) AS n FROM dsr_requests WHERE subject_request_id::text = $1"
        assert (await fetch_rows(marketing, jobs, row["external_id"]))[0]["n"] == 1

        sweep = DeferredErasureActivities(activity_context(stack.settings, pool)).sweep
        subject = SweepInput(subject_hash=row["subject_hash"], reason="test")
        first = await ActivityEnvironment().run(sweep, subject)
        assert (first.processors_waiting, first.processors_confirmed) == (1, 0)
        assert (await fetch_rows(marketing, jobs, row["external_id"]))[0]["n"] == 1  # asked again: the same job

        async def confirmed() -> bool:
            report = await ActivityEnvironment().run(sweep, subject)
            return report.processors_confirmed == 1

        await eventually(confirmed)
        assert (await _row(pool, rid, "email_marketing"))["done_at"] is not None
        assert await fetch_rows(marketing, "SELECT 1 FROM subscribers WHERE email = 'ada@example.com'") == []
        assert await _events(pool, rid) == ["erasure.deferred_submitted", "erasure.deferred_confirmed"]


async def test_a_processor_that_forgot_the_job_or_never_confirms_fails_and_the_sweep_goes_on(
        postgres, settings, dev_server, tmp_path, mail_sink):
    """An OpenDSR processor that answers 404 for the job (it purged it), and one that stays
    pending past its system's completion_timeout_days: each fails with an alert, and neither
    stops the sweep, which erases what else is due in the same run."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "deferred_processors",
                                  email_delay=600) as (stack, pool):
        marketing = stack.databases["email_marketing"]
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            forgot = await _kept_then_released(http, pool, dev_server.client, stack, "ada@example.com",
                                               "email_marketing")
            silent = await _kept_then_released(http, pool, dev_server.client, stack, "grace@example.com",
                                               "email_marketing")
            async def both_asked() -> bool:
                return all([(await _row(pool, rid, "email_marketing"))["submitted_at"] for rid in (forgot, silent)])

            await eventually(both_asked)
            # Then a third subject's request, whose analytics records a hold kept (and the processor,
            # not asked now: it would take the demo's 600 s): due in the same sweep as the two jobs.
            tracked = await place_claims_hold(pool, stack.settings, "tracked@example.com", ["analytics", "email_marketing"])
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "erasure", "subject": {"email": "tracked@example.com"}, "identity_attested": True})
            await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(r.json()["id"])).result(), 90)

        await fetch_rows(marketing, "DELETE FROM dsr_requests WHERE subject_request_id::text = $1",
                         (await _row(pool, forgot, "email_marketing"))["external_id"])
        await pool.execute("UPDATE deferred_erasures SET submitted_at = now() - interval '15 days' "
                           "WHERE request_id = $1", silent)
        async with pool.acquire() as conn:  # released with no worker to sweep: the sweep below does
            await release_hold(conn, tracked["id"], "compliance:test", reason="Claim settled")

        sweep = DeferredErasureActivities(activity_context(stack.settings, pool)).sweep
        report = await ActivityEnvironment().run(sweep, SweepInput(reason="test"))
        assert (report.processors_failed, report.processors_waiting) == (2, 1) and report.systems.get("analytics", 0) > 0
        failures = {rid: (await _row(pool, rid, "email_marketing"))["failure"] for rid in (forgot, silent)}
        assert "HTTP 404" in failures[forgot]
        assert failures[silent] == "no confirmation within 14 days of the hold's end"
        assert await fetch_rows(stack.databases["analytics"], "SELECT 1 FROM users WHERE email = 'tracked@example.com'") == []
        for rid in (forgot, silent):
            assert await _events(pool, rid) == ["erasure.deferred_submitted", "erasure.deferred_failed"]
            assert len(letters_for(mail_sink, rid, "staff_alert")) == 1


async def test_a_saas_system_kept_under_a_hold_is_erased_as_a_request_would_be(
        saas, postgres, settings, dev_server, tmp_path, mail_sink):  # noqa: F811 (fixture)
    """Stripe is reached record by record: once its legal-claims hold ends, the erasure runs as the
    request's would have, so the customer and invoice the accounting statute keeps stay, minimised,
    with deferred erasures of their own for when the statute's period ends."""
    _, stripe = saas
    customer = stripe.state.data.add_customer("ada@example.com", "Ada Lovelace", phone="+32 470 00 00 00")
    stripe.state.data.add_invoice(customer, int(time.time()) - 86400)
    systems = {"billing_stripe": http_system("http/stripe.yaml", "Stripe (card payments)")}
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "deferred_processors",
                                  extra_systems=systems) as (stack, pool):
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            rid = await _kept_then_released(http, pool, dev_server.client, stack, "ada@example.com", "billing_stripe")
            whole = "SELECT done_at FROM deferred_erasures WHERE request_id = $1 AND dataset = 'all'"

            async def erased() -> bool:
                return await pool.fetchval(whole, rid) is not None

            await eventually(erased)
        statutory = await pool.fetch("SELECT dataset, done_at FROM deferred_erasures WHERE request_id = $1 "
                                     "AND hold_kind = 'statutory' AND system = 'billing_stripe'", rid)
        assert sorted(r["dataset"] for r in statutory) == ["customers", "invoices"]
        assert all(r["done_at"] is None for r in statutory)
        assert stripe.state.data.customers[customer]["phone"] is None
        assert await _events(pool, rid) == []  # not a processor's job to follow
        erased = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1 "
                                  "AND event_type = 'erasure.deferred_erased'", rid)
        assert [dict(r["data"]) for r in erased] == [
            {"system": "billing_stripe", "kept_whole": True, "kept_by": ["legal_claims"]}]
