"""The shipped GA4 User Deletion configuration against the Google stand-in over loopback:
service-account tokens (renewed when expired), one request per identifier, the note for the
letter, Retry-After, a refused property, and the daily quota spread over days on virtual time."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import WorkflowHandle

from activities.connectors.base import PermanentConnectorError
from dsrflow.stores.requests_store import create_request
from policy.model import DEFAULT_POLICY
from schemas.requests import NewRequest
from schemas.workflow import workflow_id_for
from tests.evidence_pages import readable
from tests.fanout_stack import api, fanout_stack
from tests.letters_as_sent import LOADED, as_sent, both, kept_records
from tests.process_support import died, dsrflow_process, released
from tests.saas_support import connector, google_served, http_policy, http_system, subject
from tests.support import console_sign_in, staff_headers, text_of, wait_for_letter
from tests.yaml_files import dump_yaml, read_yaml
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow


@pytest.fixture
async def google(monkeypatch, tmp_path):
    async with google_served(monkeypatch, tmp_path) as (app, _):
        yield app


async def _request_with_identifiers(pool, loaded, values: list[tuple[str, str]]) -> str:
    row, _ = await create_request(pool, NewRequest(type="erasure", subject={"email": "tracked@example.com"}),
                                  loaded_policy=loaded, secret=b"s" * 32, actor="tests", idempotency_key=None)
    await pool.executemany(
        "INSERT INTO http_identifiers (request_id, system, id_type, value_hash, value) VALUES ($1, 'ga4', $2, $3, $4)",
        [(row["id"], kind, f"h{i}", value) for i, (kind, value) in enumerate(values)])
    return str(row["id"])


def _policy(tmp_path: Path):
    return http_policy(tmp_path, {"ga4": http_system("http/ga4.yaml", "Google Analytics 4")}, keep=("analytics",))


async def test_one_deletion_request_per_identifier_and_a_note_for_the_letter(google, pool, tmp_path):
    loaded = _policy(tmp_path)
    rid = await _request_with_identifiers(pool, loaded, [("CLIENT_ID", "GA1.1.111.222"), ("CLIENT_ID", "GA1.1.333.444"),
                                                        ("USER_ID", "C-0001")])
    connector_ = connector(loaded, "ga4", pool)
    try:
        outcome = await connector_.erase(subject("tracked@example.com", rid))
        standin = google.state.standin
        standin.tokens.expire_all()  # Google tokens last an hour; a retry later needs a new one
        again = await connector_.erase(subject("tracked@example.com", rid))
    finally:
        await connector_.close()
    sent = google.state.data.requests
    assert sorted((r["type"], r["userId"]) for r in sent) == [
        ("CLIENT_ID", "GA1.1.111.222"), ("CLIENT_ID", "GA1.1.333.444"), ("USER_ID", "C-0001")]
    assert outcome.status == "done" and outcome.datasets == {"identifiers": {"found": 3, "submitted": 3}}
    assert "Google accepted our request to delete your Google Analytics data on" in outcome.note
    assert "within 72 hours" in outcome.note and "by " in outcome.note
    # Accepted identifiers are not kept, nor sent twice.
    assert await pool.fetchval("SELECT count(*) FROM http_identifiers WHERE request_id = $1 AND value IS NOT NULL",
                               uuid.UUID(rid)) == 0
    assert again.status == "done" and len(sent) == 3
    assert len(standin.requests("POST", "/token")) == 1  # nothing left to send: no new token needed


async def test_retry_after_and_an_expired_token(google, pool, tmp_path):
    loaded = _policy(tmp_path)
    rid = await _request_with_identifiers(pool, loaded, [("CLIENT_ID", "GA1.1.1.1"), ("CLIENT_ID", "GA1.1.2.2")])
    standin = google.state.standin
    standin.inject(429, retry_after="2", path=":upsert")
    connector_ = connector(loaded, "ga4", pool)
    try:
        await connector_.exchange.credentials.headers()  # a token fetched earlier ...
        standin.tokens.expire_all()  # ... that has expired by the time it is used
        outcome = await connector_.erase(subject("tracked@example.com", rid))
    finally:
        await connector_.close()
    assert outcome.status == "done" and len(google.state.data.requests) == 2
    upserts = standin.requests("POST", ":upsert")
    assert [u.status for u in upserts] == [429, 401, 200, 200]
    assert upserts[1].at - upserts[0].at >= 2.0
    assert len(standin.requests("POST", "/token")) == 2


async def test_a_refused_property_is_permanent_and_named(google, pool, tmp_path):
    loaded = _policy(tmp_path)
    google.state.data.properties = {"1"}
    rid = await _request_with_identifiers(pool, loaded, [("CLIENT_ID", "GA1.1.1.1")])
    connector_ = connector(loaded, "ga4", pool)
    try:
        with pytest.raises(PermanentConnectorError) as raised:
            await connector_.erase(subject("tracked@example.com", rid))
    finally:
        await connector_.close()
    assert str(raised.value).startswith(
        "system ga4: Google Analytics 4 answered HTTP 403 to POST /userDeletion/userDeletionRequests:upsert "
        "(erase.user_deletion) [PERMISSION_DENIED, insufficientPermissions]")


@dataclass
class _QuotaRun:
    rid: str
    handle: WorkflowHandle
    http: Any  # the API's client
    quota: int
    expected: int  # the identifiers GA4 is asked about in all
    settings: Any  # the stack's
    worker: subprocess.Popen | None  # the worker process that carries on, if any


@asynccontextmanager
async def _waiting_for_the_next_quota_day(google, postgres, settings, pool, env, tmp_path, *,
                                          failpoints: str | None = None) -> AsyncIterator[_QuotaRun]:
    """An erasure whose GA4 identifiers outnumber a day's quota, at the moment its task waits for
    the next day, with the stack, the worker and the API still up. With `failpoints`, the worker
    from then on is a process dying at them (tests/worker_process.py), the first day's stopped."""
    # The shipped configuration, paced faster than 1.5/s and with a tenth of Google's daily quota
    # (500), so that the test does not take minutes: the same arithmetic on fewer identifiers.
    shipped = read_yaml(DEFAULT_POLICY.parent / "http/ga4.yaml")
    shipped["limits"]["per_second"] = 200
    quota = shipped["limits"]["per_day"] = 50
    (tmp_path / "http").mkdir()
    (tmp_path / "http/ga4.yaml").write_text(dump_yaml(shipped))
    ga4 = http_system("http/ga4.yaml", "Google Analytics 4", completion_timeout_days=30)
    async with fanout_stack(postgres, settings, env.client, tmp_path, extra_systems={"ga4": ga4}) as stack:
        conn = await asyncpg.connect(stack.databases["analytics"])
        try:
            user = await conn.fetchval("SELECT user_id FROM users WHERE email = 'tracked@example.com'")
            await conn.executemany(
                "INSERT INTO page_events (id, user_id, client_id, url, occurred_at) "
                "VALUES ($1, $2, $3, '/pricing', now())",
                [(10**6 + i, user, f"GA1.1.{10**8 + i}.1700000000") for i in range(60)])
            expected = 1 + await conn.fetchval(
                "SELECT count(DISTINCT client_id) FROM page_events WHERE user_id = $1", user)
        finally:
            await conn.close()
        async with AsyncExitStack() as later, api(stack) as http, AsyncExitStack() as first:
            process = None
            if failpoints is not None:
                # Started now, so that its imports (seconds on a loaded machine) overlap the first day.
                process = await later.enter_async_context(dsrflow_process(
                    "worker", stack.settings, env.client, tmp_path, failpoints=failpoints,
                    module="tests.worker_process", held=True))
            # Not sticky when another takes over: its queue would hold the workflow's next task.
            await first.enter_async_context(build_worker(env.client, stack.settings, pool, sticky=process is None))
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "erasure", "identity_attested": True, "subject": {"email": "tracked@example.com"}})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            for _ in range(600):  # the first day's quota, then it runs out
                task = await _ga4_task(pool, rid)
                if task is not None and task["external_id"] == "http-quota":
                    break
                await asyncio.sleep(0.1)
            assert task["status"] == "pending"  # what staff see: the task as recorded
            assert f"{quota} of" in task["message"] and f"daily quota ({quota}) is used up" in task["message"]
            assert len(google.state.data.requests) == quota
            if process is not None:
                await first.aclose()
                released(process)
            yield _QuotaRun(rid, env.client.get_workflow_handle(workflow_id_for(rid)), http, quota, expected,
                            stack.settings, process)


async def _ga4_task(pool, rid: str):
    return await pool.fetchrow("SELECT * FROM system_tasks WHERE request_id = $1 AND system = 'ga4'", uuid.UUID(rid))


async def _ga4_result(run: _QuotaRun):
    await asyncio.wait_for(run.handle.result(), 120)
    state = await run.handle.query(DataSubjectRequestWorkflow.state)
    return next(t for t in state.results if t.system == "ga4")


async def test_identifiers_beyond_a_days_quota_are_spread_over_days_within_it(
        google, postgres, settings, pool, time_skipping, tmp_path, mail_sink):
    async with _waiting_for_the_next_quota_day(google, postgres, settings, pool, time_skipping, tmp_path) as run:
        await time_skipping.sleep(timedelta(days=2))
        task = await _ga4_result(run)
    sent = google.state.data.requests
    assert task.status == "done" and len(sent) == run.expected > run.quota
    assert len({(r["type"], r["userId"]) for r in sent}) == run.expected  # each identifier once
    days = await pool.fetch("SELECT day, used FROM http_quota_days WHERE bucket = $1 ORDER BY day",
                            f"ga4-property-{sent[0]['propertyId']}")
    assert [d["used"] for d in days][0] == run.quota and all(d["used"] <= run.quota for d in days)
    assert sum(d["used"] for d in days) == run.expected and len(days) >= 2


async def test_a_worker_killed_while_a_poll_carries_the_erasure_on_sends_no_accepted_identifier_again(
        google, postgres, settings, pool, time_skipping, tmp_path, mail_sink):
    """The next day's poll carries the erasure on (`poll_system_action`): its worker process is
    killed once Google has accepted three of the identifiers left, before the task's result is
    kept. Another worker takes the poll over: it sends only those Google has not accepted, within
    the day's quota, and the task ends done with every identifier counted, audited once."""
    async with _waiting_for_the_next_quota_day(google, postgres, settings, pool, time_skipping, tmp_path,
                                               failpoints="http-identifier-accepted~ga4#3") as run:
        assert run.worker is not None
        # Not awaited yet: virtual time stops while an activity is in flight, so the killed poll's
        # heartbeat timeout (15 s) passes in real time, and the poll's retry waits for a worker.
        days_later = asyncio.create_task(time_skipping.sleep(timedelta(days=2)))
        await died(run.worker, tmp_path)
        assert len(google.state.data.requests) == run.quota + 3  # the killed poll's
        async with build_worker(time_skipping.client, run.settings, pool):
            await days_later
            task = await _ga4_result(run)
    sent = google.state.data.requests
    assert sorted(Counter((r["type"], r["userId"]) for r in sent).values()) == [1] * run.expected
    days = await pool.fetch("SELECT day, used FROM http_quota_days WHERE bucket = $1 ORDER BY day",
                            f"ga4-property-{sent[0]['propertyId']}")
    assert [d["used"] for d in days] == [run.quota, run.expected - run.quota]
    assert (task.status, task.found, task.changed) == ("done", run.expected, run.expected)
    events = await pool.fetch("SELECT event_key, event_type FROM audit_events WHERE request_id = $1",
                              uuid.UUID(run.rid))
    assert sorted(e["event_type"] for e in events if ":task:ga4:" in e["event_key"]) == ["task.done", "task.pending"]


async def test_a_legal_claims_hold_placed_while_the_quota_holds_the_erasure_back_keeps_the_rest(
        google, postgres, settings, pool, time_skipping, tmp_path, mail_sink):
    """The erasure carries on days later, at a poll: it did so as a status check, blind to a hold
    placed meanwhile, and sent Google every identifier left."""
    async with _waiting_for_the_next_quota_day(google, postgres, settings, pool, time_skipping, tmp_path) as run:
        placed = await run.http.post("/v1/legal-holds", headers=await staff_headers(pool, "compliance"), json={
            "email": "tracked@example.com", "systems": ["ga4"], "reason": "a claim against us is pending",
            "review_date": (datetime.now(UTC).date() + timedelta(days=400)).isoformat()})
        assert placed.status_code == 201, placed.text
        await time_skipping.sleep(timedelta(days=2))
        task = await _ga4_result(run)
        letter = " ".join(text_of(await wait_for_letter(mail_sink, run.rid, "response")).split())
        headers = await staff_headers(pool, "compliance")
        pack = (await run.http.get(f"/v1/requests/{run.rid}/evidence", headers=headers)).json()
        page = readable((await run.http.get(f"/v1/requests/{run.rid}/evidence.html", headers=headers)).text)
        await console_sign_in(run.http, pool, "compliance")
        console = readable((await run.http.get(f"/console/requests/{run.rid}")).text)
    assert len(google.state.data.requests) == run.quota  # nothing more went to Google
    assert task.status == "done" and task.message.startswith("kept under a legal-claims hold placed while")
    assert f"({run.quota} of {run.expected} identifiers accepted by Google Analytics 4" in task.message
    assert (task.found, task.changed) == (run.expected, run.quota)
    # The letter says both: what Google was asked to delete before the hold, and what the hold
    # keeps, with its review date and the remedies. Before, it said Google Analytics 4 kept it all.
    left, where = run.expected - run.quota, "in our system “Google Analytics 4”"  # no `where`: our phrase
    assert (f"Google Analytics 4: part of your data – deletion requested and accepted ({run.quota} identifiers) "
            f"Before the legal-claims hold set out below was placed, we had asked for the deletion of the data held "
            f"{where} under {run.quota} of the {run.expected} identifiers by which you are known there, and that was "
            f"accepted. We have not asked for the deletion of the data held there under the other {left} identifiers: "
            "that data is kept under the hold.") in letter
    assert (f"- the data held {where} under the other {left} identifiers by which you are known there "
            "Legal basis: Art. 17(3)(e) GDPR") in letter
    review = datetime.now(UTC).date() + timedelta(days=400)
    assert f"Next review by: {review.day} {review:%B %Y}" in letter
    assert "your data in our system “Google Analytics 4”" not in letter and "We have not done everything you asked" in letter
    # The evidence pack and the console say what the letter says (tests/test_evidence_cut_short.py
    # for their words): before, "all the data Google Analytics 4 holds, kept whole under a hold".
    counts = {"identifiers": run.expected, "accepted": run.quota, "kept": left}
    assert pack["decisions"]["refused_in_part"]["cut_short"] == [{"system": "ga4", **counts}]
    rest = (f"Google Analytics 4 holds under {left} of the {run.expected} identifiers by which it knows the subject")
    assert f"the data {rest} (it had accepted the deletion of the data under the other {run.quota} before the " \
           "hold), kept under a hold" in page and "kept whole" not in page
    assert f"The data {rest} kept under a legal-claims hold" in console and "Everything in" not in console
    assert f"(to be reviewed by {review.day} {review:%B %Y})" in console
    assert [k["hold_kind"] for k in task.kept_records] == ["legal_claims"], task.kept_records
    # Asked again when the hold ends: without its row nothing would ask Google for the rest.
    deferred = await pool.fetch("SELECT system, hold_kind, hold_ref FROM deferred_erasures WHERE request_id = $1",
                                uuid.UUID(run.rid))
    assert [(d["system"], d["hold_kind"], d["hold_ref"]) for d in deferred] == [
        ("ga4", "legal_claims", placed.json()["id"])]


async def test_a_request_closed_unanswered_keeps_no_identifier_in_clear(pool, tmp_path):
    """An attested erasure denied at approval, after its plan copied the subject's GA4 ids from
    analytics: the ids served nothing any more, and stayed in clear for good (crash audit). Now
    the close clears them; a completed request keeps its unaccepted ones for a hold's deferred
    erasure."""
    from dsrflow.stores.requests_store import set_status
    from schemas.requests import RequestStatus

    loaded = _policy(tmp_path)
    denied = await _request_with_identifiers(pool, loaded, [("CLIENT_ID", "GA1.1.555.666")])
    completed = await _request_with_identifiers(pool, loaded, [("CLIENT_ID", "GA1.1.777.888")])
    async with pool.acquire() as conn:
        await set_status(conn, denied, RequestStatus.denied, event_key=f"{denied}:status:denied", actor="test")
        await set_status(conn, completed, RequestStatus.completed, event_key=f"{completed}:status:done", actor="test")
    in_clear = "SELECT count(*) FROM http_identifiers WHERE request_id = $1 AND value IS NOT NULL"
    assert await pool.fetchval(in_clear, uuid.UUID(denied)) == 0
    assert await pool.fetchval(in_clear, uuid.UUID(completed)) == 1


async def test_a_time_at_the_calendars_edge_in_googles_answer_leaves_the_erasure_done(
        google, pool, tmp_path, monkeypatch):
    """Google accepted the deletions but stamped them 31 December 9999, so the note's date two
    months on does not exist: the task is still done (Google has acted, and a retry would read the
    same answer), the letter goes without the note, and staff read why on the task."""
    import devstack.saas.ga4 as standin_module

    class _EdgeOfTime(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(9999, 12, 31, 23, 0, tzinfo=UTC)

    monkeypatch.setattr(standin_module, "datetime", _EdgeOfTime)
    loaded = _policy(tmp_path)
    rid = await _request_with_identifiers(pool, loaded, [("CLIENT_ID", "GA1.1.555.666")])
    connector_ = connector(loaded, "ga4", pool)
    try:
        outcome = await connector_.erase(subject("tracked@example.com", rid))
    finally:
        await connector_.close()
    assert [r["userId"] for r in google.state.data.requests] == ["GA1.1.555.666"]
    assert outcome.status == "done" and outcome.datasets == {"identifiers": {"found": 1, "submitted": 1}}
    assert outcome.note is None and "cannot read" in (outcome.message or "")


# Each language's words for the line of an erasure a hold cut short and for what it keeps
# (`cut_short` in activities/letter_outcome.py), with the shipped policy's analytics system in
# GA4's place: 50 of 61 identifiers went before the hold, 11 are kept.
_CUT_SHORT = {
    "en": ("part of your data", "deletion requested and accepted", "50 identifiers", "under 50 of the 61 identifiers",
           "the data held in our website analytics under the other 11 identifiers by which you are known there"),
    "fr": ("une partie de vos données", "suppression demandée et acceptée", "50 identifiants",
           "sous 50 des 61 identifiants", "détenues dans notre outil d'analyse du site web sous les 11 autres identifiants"),
    "nl": ("een deel van uw gegevens", "verwijdering gevraagd en aanvaard", "50 identificatiegegevens",
           "onder 50 van de 61 identificatiegegevens",
           "in onze websiteanalyse worden bewaard onder de 11 andere identificatiegegevens waaronder u daar bekend bent"),
    "de": ("ein Teil Ihrer Daten", "Löschung beantragt und angenommen", "50 Kennungen", "unter 50 der 61 Kennungen",
           "in unserer Website-Analyse unter den 11 anderen Kennungen gespeichert sind, unter denen Sie dort bekannt sind"),
}


@pytest.mark.parametrize("language", list(_CUT_SHORT))
async def test_a_letter_says_what_went_before_the_hold_and_what_the_hold_keeps_in_every_language(language):
    kept = [dict(k, system="analytics") for k in kept_records() if k["dataset"] == "all"]
    report = {"report": {"results": [
        {"system": "analytics", "action": "erase", "status": "done", "found": 61, "changed": 50, "kept": 1,
         "datasets": {"identifiers": {"found": 61, "submitted": 50}}, "kept_records": kept}]}}
    letter = await as_sent("response", "erasure", report, language=language, loaded=LOADED)
    for text in both(letter):
        assert all(words in text for words in _CUT_SHORT[language]), text
