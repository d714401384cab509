"""A SaaS erasure that is complete and counted right (activities/connectors/http_rounds.py,
http_journal.py): records added while its run goes on are erased too, records that keep appearing
make the task need staff, and a staff retry after a run that stopped short goes on from its
journal, so the final counts are the whole run's; a task staff resolve ends its journal at once,
and an attempt of it still running then keeps nothing more and stops.

The service: the Mailchimp stand-in behind its rate limit (tests/saas_runs_support.py), a subject in
tens of lists, the run cut into short slices (DSRFLOW_HTTP_RUN_SLICE_SECONDS)."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi import Request, Response
from temporalio.exceptions import ApplicationError

from activities.connectors.base import PermanentConnectorError
from devstack.saas.mailchimp import subscriber_hash
from dsrflow.settings import Settings
from schemas.workflow import RUN_CONTINUES, task_workflow_id, workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.saas_runs_fixtures import newsletter_service_fixture, saas_stack_fixture  # noqa: F401 (the fixtures)
from tests.saas_runs_support import (
    HeldAnswer,
    answered,
    deletes,
    mailchimp,
    member_of_lists,
    newsletter,
)
from tests.saas_support import connector, http_policy, subject
from tests.support import (
    attested_request,
    eventually,
    staff_headers,
    staff_retry,
    staff_task_answer,
    task_result,
    text_of,
    unique_email,
    wait_for_letter,
)
from workers.dsr_worker import build_worker


async def _erase_in_slices(loaded, pool, who, seconds: float = 0.2) -> tuple[Any, int]:
    """The subject's erasure attempt after attempt, each a short slice, until one returns: its
    outcome and how many attempts it took."""
    settings = Settings().model_copy(update={"http_run_slice_seconds": seconds})
    for attempts in range(1, 200):
        system = connector(loaded, "newsletter", pool, settings)
        try:
            return await system.erase(who), attempts
        except ApplicationError as exc:
            assert exc.type == RUN_CONTINUES, exc
        finally:
            await system.close()
    raise AssertionError("the run never ended")


def _on_delete(app: Any, act: Any) -> None:
    """`act(n)` as the stand-in carries out its n-th delete (and answers it as Mailchimp does)."""
    seen = {"n": 0}

    def hook(request: Request, document: Any) -> Response:
        if document is None:  # carried out (a 404's problem document is not)
            seen["n"] += 1
            act(seen["n"])
        return answered(document)

    app.state.standin.tamper("/actions/delete-permanent", hook, method="POST")


def _refuse_deletes(app: Any, list_id: str, email: str) -> None:
    """Mailchimp refuses to delete the subject's membership of `list_id` (a 400), until the fault goes."""
    path = f"/3.0/lists/{list_id}/members/{subscriber_hash(email)}/actions/delete-permanent"
    app.state.standin.inject(400, path=path, times=100, body={
        "type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": "Invalid Resource",
        "status": 400, "detail": "This member cannot be deleted.", "instance": str(uuid.uuid4())})


async def test_memberships_added_while_the_erasure_runs_are_erased_and_counted(pool, monkeypatch, tmp_path):
    """60 memberships, erased in slices. At the 20th delete the subject signs up again to a list
    whose membership was deleted, and a sync adds them to a new list: both after their items were
    read. The read after the changes finds them; they are deleted and counted (62 found and
    deleted), and the result says a read after that found nothing more. Before, the run reported
    60 of 60 and both memberships stayed."""
    lists = 60
    async with mailchimp(monkeypatch) as app:
        email = unique_email("mid-run")
        member_of_lists(app, email, lists)
        data = app.state.data
        first = next(iter(data.lists))

        def sign_up_again(n: int) -> None:
            if n == 20:
                data.add_member(first, email, FNAME="Ada")
                data.add_member(data.add_list("Synced"), email, FNAME="Ada")

        _on_delete(app, sign_up_again)
        loaded = http_policy(tmp_path, {"newsletter": newsletter()})
        outcome, attempts = await _erase_in_slices(loaded, pool, subject(email))

    assert attempts > 1, attempts  # slices, each going on from the journal
    assert not any(data.members.values())
    assert outcome.status == "done", outcome.message
    assert outcome.datasets == {"members": {"found": lists + 2, "deleted": lists + 2}}
    assert (outcome.found, outcome.changed) == (lists + 2, lists + 2)
    assert deletes(app) == [204] * (lists + 2)  # each sent once, none answered 404
    assert "2 record(s) added at Mailchimp while the erasure ran" in outcome.message
    assert "listed nothing more to erase" in outcome.message


async def test_memberships_that_keep_appearing_make_the_task_need_staff(pool, monkeypatch, tmp_path):
    """Every delete makes a sync add the subject to one more list: each read after the changes
    finds as many new memberships as it deleted. After three such reads the erasure does not
    report success: it needs staff, naming the system and how many appeared, with the counts of
    what it did. Before, it was done, 10 of 10, with 10 memberships left."""
    lists = 10
    async with mailchimp(monkeypatch) as app:
        email = unique_email("appearing")
        member_of_lists(app, email, lists)
        data = app.state.data
        _on_delete(app, lambda n: data.add_member(data.add_list(f"Synced {n}"), email, FNAME="Ada"))
        system = connector(http_policy(tmp_path, {"newsletter": newsletter()}), "newsletter", pool)
        try:
            outcome = await system.erase(subject(email))
        finally:
            await system.close()

    assert outcome.status == "needs_attention"
    assert outcome.message.startswith("system newsletter: records of the subject kept appearing at Mailchimp")
    assert "the last of 3 reads after the changes still found 10 new (30 in all, each erased" in outcome.message
    assert outcome.datasets == {"members": {"found": 40, "deleted": 40}}
    assert sum(len(m) for m in data.members.values()) == 10  # the last delete's sync


async def test_a_retry_under_another_configuration_starts_afresh_and_says_so(pool, monkeypatch, tmp_path):
    """The service refuses a delete for good, part-way: the run stops, keeping its journal. Before
    the retry the system's base URL changes (another datacenter, a migrated account): the journal's
    records were read from elsewhere, so the retry reads afresh, and its result says that the
    earlier attempt's changes are not in its counts."""
    email = unique_email("moved")
    who = subject(email)
    loaded = http_policy(tmp_path, {"newsletter": newsletter()})
    async with mailchimp(monkeypatch) as app:
        member_of_lists(app, email, 10)
        _refuse_deletes(app, list(app.state.data.lists)[6], email)
        system = connector(loaded, "newsletter", pool)
        try:
            with pytest.raises(PermanentConnectorError):
                await system.erase(who)
        finally:
            await system.close()
        # A new base URL: opened while the first still serves, so that its port is another (the
        # first's, freed, was once handed out again, and the retry rightly went on from the journal).
        async with mailchimp(monkeypatch) as elsewhere:
            member_of_lists(elsewhere, email, 3)
            system = connector(loaded, "newsletter", pool)
            try:
                outcome = await system.erase(replace(who, attempt=who.attempt + 1))  # staff's retry
            finally:
                await system.close()
    assert outcome.datasets == {"members": {"found": 3, "deleted": 3}}
    assert "an earlier attempt made 6 change(s) at Mailchimp under another configuration" in outcome.message


async def test_a_staff_retry_after_refused_deletes_ends_with_the_whole_runs_counts(
        newsletter_service, stack, pool, dev_server, mail_sink):
    """30 memberships; Mailchimp refuses the delete of the 28th for good (until someone sorts it
    out there): the task needs staff after 27 deletes. Staff retry it: the retry goes on
    from the run's journal (no list read again) and sends the three. The task, the evidence pack
    and the subject's letter say 30 found and 30 deleted; the journal is gone. Before, the retry
    started afresh, found the three left and reported "3 deleted"."""
    lists = 30
    app = newsletter_service
    email = unique_email("retried")
    member_of_lists(app, email, lists)
    _refuse_deletes(app, list(app.state.data.lists)[-3], email)
    try:
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            rid = await attested_request(http, pool, "erasure", email)
            stuck = await task_result(http, pool, rid, "newsletter", lambda r: r["status"] == "needs_attention")
            assert "HTTP 400" in stuck["message"], stuck
            assert deletes(app) == [204] * (lists - 3) + [400]
            kept = await pool.fetchval("SELECT count(*) FROM http_run_journal WHERE request_id = $1", uuid.UUID(rid))
            app.state.standin.faults.clear()  # sorted out at Mailchimp
            compliance = await staff_headers(pool, "compliance")
            assert (await staff_retry(http, rid, "newsletter", compliance)).status_code == 200
            state = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 120)
            evidence = (await http.get(f"/v1/requests/{rid}/evidence", headers=compliance)).json()
        letter = text_of(await wait_for_letter(mail_sink, rid, "response"))
    finally:
        app.state.standin.faults.clear()

    (result,) = [r for r in state["results"] if r["system"] == "newsletter"]
    assert (result["status"], result["attempt"]) == ("done", 2), result
    assert result["datasets"] == {"members": {"found": lists, "deleted": lists}}
    assert (result["found"], result["changed"]) == (lists, lists)
    (task,) = [t for t in evidence["results"] if t["system"] == "newsletter"]
    assert (task["status"], task["found"], task["changed"], task["attempt"]) == ("done", lists, lists, 2)
    assert re.search(rf"Newsletter: newsletter subscriptions erased \({lists} records\)", letter), letter
    assert not any(app.state.data.members.values())
    assert kept > 0  # the journal outlived the task's needing staff, for the retry
    # The refused delete went again, then the two never sent; each list's member was read once,
    # then once more after the last delete.
    assert deletes(app) == [204] * (lists - 3) + [400] + [204] * 3
    reads = [s.status for s in app.state.standin.requests("GET", "/members/") if subscriber_hash(email) in s.path]
    assert reads == [200] * lists + [404] * lists
    assert await pool.fetchval("SELECT count(*) FROM http_run_journal WHERE request_id = $1", uuid.UUID(rid)) == 0


@pytest.fixture(scope="module")
async def two_systems(newsletter_service: Any, postgres: Any, settings: Any, dev_server: Any,
                      tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """A stack with the Mailchimp account under two systems' names: a refused delete makes both
    tasks need staff, so the request stays open while staff answer one."""
    first, second = newsletter(), {**newsletter(), "label": "Mailing list"}
    # A test below holds Mailchimp's answers while staff act: on a loaded machine that outlasted the
    # connector's 30 s timeout once, and the retried delete shifted what the test counts.
    for system in (first, second):
        system["config"]["timeout_seconds"] = 180
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path_factory.mktemp("saas-two"),
                            extra_systems={"newsletter": first, "mailing": second}) as stack:
        yield stack


async def _journal_rows(pool: Any, rid: str) -> dict[str, Any]:
    """Whether the request is closed, the newsletter task's status and the journal's rows by
    system, in one snapshot."""
    row = await pool.fetchrow(
        """SELECT (SELECT closed_at IS NOT NULL FROM dsr_requests WHERE id = $1) AS closed,
                  (SELECT status FROM system_tasks WHERE request_id = $1 AND system = 'newsletter') AS status,
                  (SELECT coalesce(jsonb_object_agg(system, n), '{}') FROM
                     (SELECT system, count(*) AS n FROM http_run_journal WHERE request_id = $1 GROUP BY system) j)
                    AS rows""", uuid.UUID(rid))
    return dict(row)


async def _resolve_newsletter(http: Any, pool: Any, rid: str, note: str, compliance: dict[str, str]) -> dict[str, Any]:
    """Compliance resolve the newsletter task; `_journal_rows` once the resolution is on record."""
    answer = {"system": "newsletter", "note": note}
    assert (await staff_task_answer(http, rid, "resolve-task", answer, compliance)).status_code == 200

    async def resolution_recorded() -> bool:
        return (await _journal_rows(pool, rid))["status"] == "done"

    await eventually(resolution_recorded)
    return await _journal_rows(pool, rid)


async def test_a_task_staff_resolve_ends_its_journal_at_once(newsletter_service, two_systems, pool, dev_server):
    """20 memberships; Mailchimp refuses one delete for good, so both systems' tasks need staff,
    their journals kept. Compliance resolves the newsletter's: the statement that records the
    resolution takes its journal while the request is still open, and the mailing list's journal
    stays for its retry, which goes on from it. The evidence pack names the resolution, its note and
    who made it, beside the failure it answered. Before, the resolved task's rows (the subject's
    memberships as Mailchimp listed them, sealed) stayed until the request closed, though no retry
    follows a resolution to read them."""
    app, note = newsletter_service, "Deleted at Mailchimp by hand, ticket 41"
    email = unique_email("resolved")
    member_of_lists(app, email, 20)
    _refuse_deletes(app, list(app.state.data.lists)[-3], email)
    try:
        async with build_worker(dev_server.client, two_systems.settings, pool), api(two_systems) as http:
            rid = await attested_request(http, pool, "erasure", email)
            for system in ("newsletter", "mailing"):
                await task_result(http, pool, rid, system, lambda r: r["status"] == "needs_attention")
            before = await _journal_rows(pool, rid)
            compliance = await staff_headers(pool, "compliance")
            after = await _resolve_newsletter(http, pool, rid, note, compliance)
            app.state.standin.faults.clear()  # sorted out at Mailchimp
            assert (await staff_retry(http, rid, "mailing", compliance)).status_code == 200
            state = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
            evidence = (await http.get(f"/v1/requests/{rid}/evidence", headers=compliance)).json()
    finally:
        app.state.standin.faults.clear()

    assert not before["closed"] and before["rows"].get("newsletter") and before["rows"].get("mailing"), before
    assert not after["closed"], after  # the mailing list's task still needed staff
    assert "newsletter" not in after["rows"], after
    assert after["rows"].get("mailing") == before["rows"]["mailing"], (before, after)  # kept for its retry
    results = {r["system"]: r for r in state["results"]}
    assert (results["newsletter"]["status"], results["newsletter"]["attempt"]) == ("done", 1), results
    assert (results["mailing"]["status"], results["mailing"]["attempt"]) == ("done", 2), results
    assert not any(app.state.data.members.values())
    tasks = {t["system"]: t for t in evidence["results"]}
    task = tasks["newsletter"]
    assert (task["status"], task["attempt"], task["message"]) == ("done", 1, f"resolved by staff: {note}"), task
    assert "HTTP 400" in task["attention"]["message"], task
    assert [(s["what"], s["note"]) for s in task["staff"]] == [("resolved", note)] and task["staff"][0]["by"], task
    assert [s["what"] for s in tasks["mailing"]["staff"]] == ["retried"], tasks["mailing"]
    assert evidence["audit"]["verification"]["ok"], evidence["audit"]["verification"]
    assert await pool.fetchval("SELECT count(*) FROM http_run_journal WHERE request_id = $1", uuid.UUID(rid)) == 0



async def test_an_attempt_still_running_when_staff_resolve_its_task_keeps_nothing_and_stops(
        newsletter_service, two_systems, pool, dev_server, caplog):
    """10 memberships under two systems; Mailchimp holds the answer to each system's first delete.
    Meanwhile an operator ends the newsletter task's workflow (its attempt, not told, runs on) and
    compliance resolves the task: the resolution takes the journal. Then the answers come: the
    running attempt writes no row again and sends no other delete; it stops, answering with the
    resolution on record, which stands. Before, it went on deleting and journaling after the
    resolution, and its rows (the subject's memberships, sealed) stayed until the request closed.
    The mailing list's task, refused its last delete, needs staff: the request stays open."""
    caplog.set_level(logging.INFO, logger="temporalio.activity")
    app, note, lists = newsletter_service, "Deleted at Mailchimp by hand, ticket 57", 10
    email = unique_email("resolved-running")
    member_of_lists(app, email, lists)
    _refuse_deletes(app, list(app.state.data.lists)[-1], email)
    gate, held = asyncio.Event(), []

    def hold(request: Request, document: Any) -> Response:
        held.append(request.url.path)
        return HeldAnswer(gate, answered(document))

    app.state.standin.tamper("/actions/delete-permanent", hold, method="POST")
    try:
        async with build_worker(dev_server.client, two_systems.settings, pool), api(two_systems) as http:
            rid = await attested_request(http, pool, "erasure", email)
            task = dev_server.client.get_workflow_handle(task_workflow_id(rid, "newsletter", "erase", 1))

            async def both_held_and_heartbeat_heard() -> bool:
                # Past the attempt's first heartbeat, the next goes out seconds later (the SDK
                # spaces them): the attempt hears of its workflow's end only then.
                if len(held) < 2:
                    return False
                pending = (await task.describe()).raw_description.pending_activities
                return bool(pending) and pending[0].HasField("last_heartbeat_time")

            await eventually(both_held_and_heartbeat_heard, 20)
            await task.terminate("an operator ends the task's workflow")
            await task_result(http, pool, rid, "newsletter", lambda r: r["status"] == "needs_attention")
            compliance = await staff_headers(pool, "compliance")
            resolved = await _resolve_newsletter(http, pool, rid, note, compliance)
            sent = len(deletes(app))
            gate.set()

            async def attempt_over() -> bool:  # stopped, or (before) refused its last delete too
                return bool(_stopped(caplog)) or deletes(app)[sent:].count(400) == 2

            await eventually(attempt_over, 30)
            stuck = await task_result(http, pool, rid, "mailing", lambda r: r["status"] == "needs_attention")
            after = await _journal_rows(pool, rid)
            record = await pool.fetchrow("SELECT status, attempt, message FROM system_tasks WHERE request_id = $1 "
                                         "AND system = 'newsletter'", uuid.UUID(rid))
    finally:
        app.state.standin.faults.clear()
        app.state.standin.tampers.clear()
        gate.set()

    assert "newsletter" not in resolved["rows"] and resolved["rows"].get("mailing"), resolved
    assert not after["closed"] and "newsletter" not in after["rows"], after
    # After the answers: the mailing list's nine deletes (the last refused), none of the newsletter's.
    assert "HTTP 400" in stuck["message"], stuck
    after_answers = deletes(app)[sent:]
    assert len(after_answers) == lists - 1 and after_answers.count(400) == 1, (after_answers, held)
    assert _stopped(caplog), "the running attempt never stopped"
    assert tuple(record) == ("done", 1, f"resolved by staff: {note}")


def _stopped(caplog: Any) -> list[str]:
    return [r.getMessage() for r in caplog.records if "task ended while its attempt ran" in r.getMessage()]
