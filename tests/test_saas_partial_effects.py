"""A SaaS run that changed part of what it was asked to, then its task ended without success: its
retries ran out (the task needs staff), staff resolved it by hand, or its request was withdrawn
while it ran. What its journal counted (migration 0049, activities/task_results.py) stays on the
task's record, in the audit trail, the evidence pack and the letter. Before, the task was recorded
with 0 changed and the journal went with the resolution or the close: everything said nothing was
changed there, though 1 of 3 memberships had been erased. In-process, on the session's database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from fastapi import Request, Response
from temporalio.exceptions import ApplicationError

from activities.connectors.base import PermanentConnectorError
from activities.task_results import store_task_result
from api.read_models.event_lines import describe_event
from api.read_models.evidence import assemble_evidence
from dsrflow.i18n import translations
from dsrflow.stores.requests_store import set_status
from schemas.requests import RequestStatus
from schemas.workflow import RUN_CONTINUES, TaskResult
from tests.evidence_pages import readable, section
from tests.letters_as_sent import as_sent, both
from tests.saas_runs_support import answered, deletes, mailchimp, member_of_lists, newsletter
from tests.saas_support import SECRET, connector, http_policy, subject
from tests.support import console_sign_in, staff_headers, stored_request, unique_email
from workers.dsr_worker import activity_context

NEEDS_STAFF = "PermanentConnectorError: Mailchimp answered HTTP 400 to a delete"
STOPPED = ("Our automated work %(where)s stopped before it was finished; by then it had made %(num)d change "
           "to your records there.",
           "Our automated work %(where)s stopped before it was finished; by then it had made %(num)d changes "
           "to your records there.")


async def _erased_one_of_three(pool: Any, settings: Any, monkeypatch: Any, tmp_path: Any, label: str) -> str:
    """A request whose erasure at the newsletter deleted the first of the subject's 3 memberships,
    then the service refused the others (400): the run failed, its journal counting 1 change."""
    email = unique_email(label)
    rid = await stored_request(pool, settings, label, "erasure", email=email)
    async with mailchimp(monkeypatch) as app:
        member_of_lists(app, email, 3)

        def refuse_after_the_first(request: Request, document: Any) -> Response:
            if deletes(app).count(204) < 1:
                return answered(document)
            return answered({"status": 400, "title": "Invalid Resource", "detail": "refused", "type": "x"})

        app.state.standin.tamper("/actions/delete-permanent", refuse_after_the_first, method="POST")
        system = connector(http_policy(tmp_path, {"newsletter": newsletter()}), "newsletter", pool)
        try:
            with pytest.raises(PermanentConnectorError, match="answered HTTP 400"):
                await system.erase(subject(email, rid))
        finally:
            await system.close()
    assert deletes(app)[0] == 204 and 400 in deletes(app)
    return rid


async def _needing_staff(settings: Any, pool: Any, rid: str) -> None:
    """The task's result once its retries ran out, as its workflow records it (changed 0: the
    workflow knows only that its activity failed)."""
    await store_task_result(activity_context(settings, pool), rid, TaskResult(
        system="newsletter", action="erase", status="needs_attention", message=NEEDS_STAFF))


async def _task(pool: Any, rid: str) -> dict[str, Any]:
    return dict(await pool.fetchrow("SELECT status, changed, partial_changed, message FROM system_tasks "
                                    "WHERE request_id = $1 AND system = 'newsletter'", uuid.UUID(rid)))


async def _events(pool: Any, rid: str, kind: str) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1 "
                                              "AND event_type = $2 ORDER BY chain_pos", uuid.UUID(rid), kind)]


def _said(changes: int, language: str = "en") -> str:
    t = translations(language)  # a system the default policy lacks: our phrase around its id
    return t.ngettext(*STOPPED, changes) % {"where": t.gettext("in our system “%(system)s”") % {"system": "newsletter"},
                                            "num": changes}


async def test_a_run_that_erased_one_of_three_then_failed_is_on_record_as_one_change(
        http, pool, settings, monkeypatch, tmp_path):
    """The run deleted 1 of 3 memberships and failed; the task needs staff, who close the request.
    Its record, the audit trail, the evidence pack (JSON and page), the request's page and the
    closing letter say 1 change was made."""
    rid = await _erased_one_of_three(pool, settings, monkeypatch, tmp_path, "partial-failed")
    await _needing_staff(settings, pool, rid)
    assert await _task(pool, rid) == {"status": "needs_attention", "changed": 0, "partial_changed": 1,
                                      "message": NEEDS_STAFF}
    (event,) = await _events(pool, rid, "task.needs_attention")
    assert event["data"]["partial_changed"] == 1
    assert "1 change(s) made by its run before it stopped" in describe_event(event)
    async with pool.acquire() as conn:
        await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:test-cancelled", actor="test")
    assert (await _task(pool, rid))["partial_changed"] == 1  # the close took the journal, not the count
    pack = await assemble_evidence(pool, rid, secret=SECRET)
    assert pack is not None
    (result,) = [r for r in pack["results"] if r["system"] == "newsletter"]
    assert (result["changed"], result["partial_changed"]) == (0, 1)
    shown = "0 (and 1 change(s) made by its run before it stopped)"
    text = readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=await staff_headers(pool))).text)
    assert f"newsletter erase needs attention 0 {shown} " in section(text, "Results per system", "Letters sent")
    await console_sign_in(http, pool, "compliance")
    page = readable((await http.get(f"/console/requests/{rid}")).text)
    assert f"newsletter erase needs attention 0 {shown} " in page, page
    letter = await as_sent("cancellation", "erasure", {"reason": "Withdrawn by phone", "withdrawn": True,
                                                       "acted_in": [], "asked_in": []}, pool=pool, id=rid)
    for part in both(letter):
        assert _said(1) in part


async def test_a_request_withdrawn_mid_run_keeps_what_the_run_had_changed(pool, settings, monkeypatch, tmp_path):
    """The request is withdrawn while its run is part-way (no result of the task stored yet): the
    close's trigger takes the journal and keeps the count of its deletes on the task, and the
    trail says so. Before, the journal went and nothing said anything had been deleted."""
    email = unique_email("partial-withdrawn")
    rid = await stored_request(pool, settings, "partial-withdrawn", "erasure", email=email)
    async with mailchimp(monkeypatch) as app:
        member_of_lists(app, email, 200)
        system = connector(http_policy(tmp_path, {"newsletter": newsletter()}), "newsletter", pool,
                           settings.model_copy(update={"http_run_slice_seconds": 0.2}))
        try:
            while not deletes(app):
                with pytest.raises(ApplicationError) as stopped:
                    await system.erase(subject(email, rid))
                assert stopped.value.type == RUN_CONTINUES  # the slice's end: the next would carry on
        finally:
            await system.close()
    made = deletes(app).count(204)
    assert made > 0
    async with pool.acquire() as conn:
        await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:test-withdrawn", actor="test")
    assert await pool.fetchval("SELECT count(*) FROM http_run_journal WHERE request_id = $1", uuid.UUID(rid)) == 0
    task = await _task(pool, rid)
    assert (task["status"], task["partial_changed"]) == ("needs_attention", made)
    (event,) = await _events(pool, rid, "task.partial_effect")
    assert event["data"] == {"system": "newsletter", "action": "erase", "attempt": 1, "counted": made}


async def test_a_resolution_after_a_partial_run_keeps_both_on_record(pool, settings, monkeypatch, tmp_path):
    """Staff resolve the task whose run erased 1 of 3 memberships before it failed: the record
    says resolved by staff, and that the run had made 1 change; so do the trail and the response
    letter. Before, the resolution took the journal and the record said 0 changed."""
    rid = await _erased_one_of_three(pool, settings, monkeypatch, tmp_path, "partial-resolved")
    await _needing_staff(settings, pool, rid)
    resolution = TaskResult(system="newsletter", action="erase", status="done",
                            message="resolved by staff: the other two deleted in Mailchimp's console")
    await store_task_result(activity_context(settings, pool), rid, resolution)
    assert await _task(pool, rid) == {"status": "done", "changed": 0, "partial_changed": 1,
                                      "message": resolution.message}
    assert await pool.fetchval("SELECT count(*) FROM http_run_journal WHERE request_id = $1", uuid.UUID(rid)) == 0
    (event,) = await _events(pool, rid, "task.done")
    assert (event["data"]["message"], event["data"]["partial_changed"]) == (resolution.message, 1)
    for language in ("en", "fr"):
        letter = await as_sent("response", "erasure", {"report": {"results": [resolution.model_dump()]}},
                               pool=pool, id=rid, language=language)
        t = translations(language)
        for part in both(letter):
            # A line of the response's list: done in part by the run, the rest by staff (the letter
            # says the request is complete); not the closing letters' "stopped" sentence beside it.
            assert t.gettext("changed by our automated work before it stopped; our staff completed the rest") in part
            assert t.ngettext("%(num)d change", "%(num)d changes", 1) % {"num": 1} in part
            assert _said(1, language) not in part


async def test_a_retry_under_way_when_the_request_closes_keeps_the_count_its_close_kept(pool, settings):
    """Staff pressed Retry on a task whose first run erased 1 item before it needed them; the
    retry (attempt 2, going on from it) had erased 1 more when the request was withdrawn. The
    close's trigger keeps 2 on the task's record, still attempt 1's; the retry's own result comes
    after (its activity fails: the workflow records it needing staff). The record, the trail and
    the letters keep 2. Before, that result looked only for a count kept at attempt 2 and stored
    none over it: the record said nothing had been changed there."""
    rid = await stored_request(pool, settings, "partial-retried", "erasure")
    await store_task_result(activity_context(settings, pool), rid, TaskResult(
        system="newsletter", action="erase", status="needs_attention", message=NEEDS_STAFF))
    await pool.executemany(
        """INSERT INTO http_run_journal (request_id, system, run, attempt, step, item, state, status, counted)
           VALUES ($1, 'newsletter', 'erase', $2, 'delete', $3, 'answered', 204, true)""",
        [(uuid.UUID(rid), 1, "first"), (uuid.UUID(rid), 2, "second")])
    async with pool.acquire() as conn:
        await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:test-withdrawn", actor="test")
    assert (await _task(pool, rid))["partial_changed"] == 2

    await store_task_result(activity_context(settings, pool), rid, TaskResult(
        system="newsletter", action="erase", status="needs_attention", attempt=2, message=NEEDS_STAFF))

    assert (await _task(pool, rid))["partial_changed"] == 2
    assert (await _events(pool, rid, "task.needs_attention"))[-1]["data"]["partial_changed"] == 2  # attempt 2's


async def test_a_try_running_when_its_request_closes_sends_no_change_after_it(pool, settings, monkeypatch, tmp_path):
    """The request is withdrawn while a try of its erasure is deleting (its cancellation not yet
    heard): the try sends no delete after the close (one in flight at that moment may still be
    answered) and stops, final and benign. Before, it went on deleting to the end of the run,
    none of those deletes counted anywhere, while the letter said the work had stopped and that
    no further action would be taken."""
    email = unique_email("partial-in-flight")
    rid = await stored_request(pool, settings, "partial-in-flight", "erasure", email=email)
    async with mailchimp(monkeypatch) as app:
        member_of_lists(app, email, 60)
        system = connector(http_policy(tmp_path, {"newsletter": newsletter()}), "newsletter", pool)
        try:
            erasing = asyncio.ensure_future(system.erase(subject(email, rid)))
            while not deletes(app) and not erasing.done():
                await asyncio.sleep(0.002)
            async with pool.acquire() as conn:
                await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:test-withdrawn", actor="test")
            at_close = len(deletes(app))
            with pytest.raises(ApplicationError) as stopped:
                await erasing
        finally:
            await system.close()
    assert (stopped.value.type, stopped.value.non_retryable) == ("HttpRunRequestClosed", True)
    assert 0 < len(deletes(app)) <= at_close + 1 < 60


async def test_a_run_that_counted_its_own_changes_is_not_shown_twice_once_closed(http, pool, settings):
    """A run needing staff that counted its 3 deletes itself (a record still appearing after
    them): the request is then withdrawn, and its close keeps the journal's count of 3 on the
    task. The evidence pack shows 3 changed, not "3 (and 3 change(s) made by its run before it
    stopped)", which read as 6. Before, the close's count was shown beside the task's own."""
    rid = await stored_request(pool, settings, "partial-counted", "erasure")
    await pool.executemany(
        """INSERT INTO http_run_journal (request_id, system, run, attempt, step, item, state, status, counted)
           VALUES ($1, 'newsletter', 'erase', 1, 'delete', $2, 'answered', 204, true)""",
        [(uuid.UUID(rid), item) for item in ("a", "b", "c")])
    await store_task_result(activity_context(settings, pool), rid, TaskResult(
        system="newsletter", action="erase", status="needs_attention", found=3, changed=3,
        message="a record still appears after its delete"))
    async with pool.acquire() as conn:
        await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:test-withdrawn", actor="test")
    text = readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=await staff_headers(pool))).text)
    results = section(text, "Results per system", "Letters sent")
    assert "newsletter erase needs attention 3 3 " in results, results
    assert "made by its run before it stopped" not in results
