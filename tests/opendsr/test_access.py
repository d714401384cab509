"""OpenDSR v2 access, objection and error handling against the demo e-mail marketing processor,
and its deterministic seeding."""

from __future__ import annotations

import uuid

import httpx
import pytest

from activities.connectors.base import PermanentConnectorError, Subject
from activities.connectors.opendsr import (
    OpenDsrUnavailable,
    subject_request_id,
)
from devstack.demo.email_marketing_db import email_hash, ensure_email_marketing_database
from devstack.demo.subjects import demo_subjects
from devstack.postgres import EmbeddedPostgres
from devstack.processes import free_port
from tests.opendsr.support import (
    Receiver,
    connector_for,
    population_subscribers,
)
from tests.support import fetch_rows


async def test_access_returns_ada_records(processor: str, processor_db: str, receiver: tuple[Receiver, str]) -> None:
    _, callback_url = receiver
    connector = connector_for(processor, callback_url, origins={"subscribers": "provided"})
    subject = Subject(request_id=str(uuid.uuid4()), email="Ada@Example.com ")
    try:
        records = [record async for record in connector.access(subject)]
    finally:
        await connector.close()
    subscribers = [r for r in records if r.dataset == "subscribers"]
    activity = [r for r in records if r.dataset == "campaign_activity"]
    assert len(subscribers) == 1
    assert subscribers[0].fields["email"] == "ada@example.com"
    # Where the records come from is the policy's call: marked, or observed by default.
    assert subscribers[0].fields["first_name"] == "Ada" and set(subscribers[0].origin_of.values()) == {"provided"}
    assert activity and all(set(r.origin_of.values()) == {"observed"} for r in activity)
    assert {r.fields["event"] for r in activity} <= {"sent", "open", "click"}
    assert all(r.category == "marketing" for r in records)
    expected = await fetch_rows(
        processor_db,
        "SELECT a.id FROM campaign_activity a JOIN subscribers s ON s.id = a.subscriber_id WHERE s.email = $1",
        "ada@example.com",
    )
    assert len(activity) == len(expected)


async def test_results_need_the_token(processor: str, receiver: tuple[Receiver, str]) -> None:
    recorder, callback_url = receiver
    connector = connector_for(processor, callback_url)
    subject = Subject(request_id=str(uuid.uuid4()), email="ada@example.com")
    external_id = subject_request_id(subject.request_id, "email_marketing", "access")
    try:
        _ = [record async for record in connector.access(subject)]
        # The status document names the results; access jobs ask for no callbacks (the
        # connector polls while it builds the package).
        results_url = (await connector._request_status(external_id))["results_url"]
    finally:
        await connector.close()
    assert not any(external_id.encode() in body for body, _ in recorder.received)
    async with httpx.AsyncClient() as http:
        assert (await http.get(results_url)).status_code == 200
        assert (await http.get(results_url.split("?")[0])).status_code == 403
        assert (await http.get(results_url.split("?")[0] + "?token=guess")).status_code == 403


async def test_objection_and_unsupported_actions(
    processor: str, processor_db: str, receiver: tuple[Receiver, str]
) -> None:
    _, callback_url = receiver
    email = population_subscribers()[1]
    connector = connector_for(processor, callback_url)
    subject = Subject(request_id=str(uuid.uuid4()), email=email)
    try:
        outcome = await connector.object(subject, "direct_marketing")
        assert (outcome.status, outcome.found, outcome.changed) == ("done", 1, 1)
        again = await connector.object(subject, "direct_marketing")
        assert (again.status, again.found, again.changed) == ("done", 1, 0)
        stranger = await connector.object(Subject(request_id="r", email="stranger@example.net"), "direct_marketing")
        assert stranger.status == "not_found"
        assert (await connector.object(subject, "profiling")).status == "not_found"
        for outcome in (
            await connector.rectify(subject, {"name": "X"}),
            await connector.restrict(subject),
            await connector.lift_restriction(subject),
        ):
            assert outcome.status == "needs_attention" and "manually" in outcome.message
    finally:
        await connector.close()
    [row] = await fetch_rows(processor_db, "SELECT subscribed, unsubscribed_at FROM subscribers WHERE email = $1", email)
    assert row["subscribed"] is False and row["unsubscribed_at"] is not None
    assert await fetch_rows(processor_db, "SELECT 1 FROM suppressions WHERE email_sha256 = $1", email_hash(email))


async def test_client_errors_are_permanent_and_outages_are_not(processor: str, receiver: tuple[Receiver, str]) -> None:
    _, callback_url = receiver
    subject = Subject(request_id=str(uuid.uuid4()), email="ada@example.com")
    wrong_path = connector_for(processor + "/v9", callback_url)
    known = connector_for(processor, callback_url)
    nobody_home = connector_for(f"http://127.0.0.1:{free_port()}/opendsr", callback_url)
    try:
        with pytest.raises(PermanentConnectorError, match=r"email_marketing.*HTTP 404"):
            await wrong_path.erase(subject)
        with pytest.raises(PermanentConnectorError, match=r"email_marketing.*HTTP 404"):
            await known.status(subject, str(uuid.uuid4()))
        with pytest.raises(OpenDsrUnavailable) as outage:
            await nobody_home.erase(subject)
        assert not isinstance(outage.value, PermanentConnectorError)
    finally:
        for connector in (wrong_path, known, nobody_home):
            await connector.close()


async def test_seeding_is_deterministic_and_idempotent(postgres: EmbeddedPostgres) -> None:
    digest = (
        "SELECT (SELECT count(*) FROM subscribers) AS subscribers, (SELECT count(*) FROM campaign_activity) AS activity, "
        "(SELECT md5(string_agg(concat_ws('|', id, email, first_name, last_name, subscribed, consent_at, source, "
        "unsubscribed_at), ',' ORDER BY id)) FROM subscribers) AS s, "
        "(SELECT md5(string_agg(concat_ws('|', subscriber_id, campaign, event, occurred_at, ip, user_agent), ',' "
        "ORDER BY subscriber_id, occurred_at, event)) FROM campaign_activity) AS a"
    )
    first, second = (postgres.url(f"email_seed_{uuid.uuid4().hex[:8]}") for _ in range(2))
    await ensure_email_marketing_database(postgres, first)
    [before] = await fetch_rows(first, digest)
    await ensure_email_marketing_database(postgres, first)
    await ensure_email_marketing_database(None, second)  # creates the database itself
    [again] = await fetch_rows(first, digest)
    [elsewhere] = await fetch_rows(second, digest)
    assert dict(before) == dict(again) == dict(elsewhere)
    assert before["subscribers"] == sum(s.in_email_marketing for s in demo_subjects())
    emails = {r["email"] for r in await fetch_rows(first, "SELECT email FROM subscribers")}
    assert {"ada@example.com", "grace@example.com"} <= emails
    assert "tracked@example.com" not in emails
    # Someone erased stays erased when the service starts again.
    await fetch_rows(first, "DELETE FROM subscribers WHERE email = 'ada@example.com'")
    await ensure_email_marketing_database(postgres, first)
    assert not await fetch_rows(first, "SELECT 1 FROM subscribers WHERE email = 'ada@example.com'")
