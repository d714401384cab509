"""The four shipped SaaS configurations where their services' documented answers are not the happy
path: a credential refused (Stripe's expired key, Mailchimp's key for another datacenter, a HubSpot
app without a scope, a Google service account without the property or without the API enabled in
its project, which Google's reason tells apart) flags the task naming the variables staff must check; and a GA4 erasure under way when its request is withdrawn sends Google
nothing more, its accepted deletions counted in the withdrawal letter, as every other change is
(its deletion requests went around the run's journal); the erasure of a GA4 kept whole under a
hold released while its request is still open is no task's run and keeps no journal, and an
identifier an unanswered close cleared is never sent. In-process, against the stand-ins."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

import activities.connectors.http as http_connector
from activities.connectors.base import ErasureContext, PermanentConnectorError
from dsrflow.stores.requests_store import set_status
from schemas.requests import RequestStatus
from tests.letters_as_sent import as_sent
from tests.saas_support import (
    collect,
    connector,
    google_served,
    hubspot_served,
    mailchimp_served,
    stripe_served,
    subject,
)
from tests.test_saas_ga4 import _policy, _request_with_identifiers


@asynccontextmanager
async def _stripe_key_expired(monkeypatch: Any, tmp_path: Any, pool: Any) -> AsyncIterator[Callable[[], Any]]:
    async with stripe_served(monkeypatch, tmp_path, "sk_live_expired") as (app, loaded, _):
        app.state.data.expired.add("sk_live_expired")  # rolled with an expiry that has passed
        yield lambda: collect(connector(loaded, "billing_stripe", pool), subject("ada@example.com"))


@asynccontextmanager
async def _mailchimp_other_datacenter(monkeypatch: Any, tmp_path: Any, pool: Any) -> AsyncIterator[Callable[[], Any]]:
    async with mailchimp_served(monkeypatch, tmp_path) as (_, loaded, _url):
        monkeypatch.setenv("MAILCHIMP_API_KEY", "0123456789abcdef-us6")  # another account's datacenter
        yield lambda: connector(loaded, "newsletter", pool).erase(subject("ada@example.com"))


@asynccontextmanager
async def _hubspot_scope_missing(monkeypatch: Any, tmp_path: Any, pool: Any) -> AsyncIterator[Callable[[], Any]]:
    async with hubspot_served(monkeypatch, tmp_path) as (app, loaded, _):
        app.state.standin.inject(403, path="/search")  # category MISSING_SCOPES
        yield lambda: collect(connector(loaded, "crm_hubspot", pool), subject("ada@example.com"))


@asynccontextmanager
async def _ga4_property_not_granted(monkeypatch: Any, tmp_path: Any, pool: Any) -> AsyncIterator[Callable[[], Any]]:
    async with google_served(monkeypatch, tmp_path) as (app, _):
        app.state.data.properties = {"1"}  # the service account is on another property only
        loaded = _policy(tmp_path)
        rid = await _request_with_identifiers(pool, loaded, [("CLIENT_ID", "GA1.1.1.1")])
        yield lambda: connector(loaded, "ga4", pool).erase(subject("tracked@example.com", rid))


@asynccontextmanager
async def _ga4_api_not_enabled(monkeypatch: Any, tmp_path: Any, pool: Any) -> AsyncIterator[Callable[[], Any]]:
    async with google_served(monkeypatch, tmp_path) as (app, _):
        app.state.data.api_enabled = False  # not in the service account's Cloud project
        loaded = _policy(tmp_path)
        rid = await _request_with_identifiers(pool, loaded, [("CLIENT_ID", "GA1.1.1.1")])
        yield lambda: connector(loaded, "ga4", pool).erase(subject("tracked@example.com", rid))


_GA4_CHECK = ("the credentials were refused or lack a permission the request needs: check the credentials in "
              "GA4_SERVICE_ACCOUNT (auth.service_account_env) and the settings read from GA4_API_BASE, "
              "GA4_PROPERTY_ID, GA4_TOKEN_URL")


@pytest.mark.parametrize(("refused", "said"), [
    (_stripe_key_expired, "system billing_stripe: Stripe answered HTTP 401 to GET /v1/customers (access.customers) "
     "[api_key_expired]: the credentials were refused or lack a permission the request needs: check the "
     "credentials in STRIPE_SECRET_KEY (auth.token_env) and the settings read from STRIPE_API_BASE"),
    (_mailchimp_other_datacenter, "system newsletter: Mailchimp answered HTTP 401 to GET /3.0/lists (erase.lists): "
     "the credentials were refused or lack a permission the request needs: check the credentials in "
     "MAILCHIMP_API_KEY (auth.password_env) and the settings read from MAILCHIMP_API_BASE"),
    (_hubspot_scope_missing, "system crm_hubspot: HubSpot answered HTTP 403 to POST /crm/v3/objects/contacts/search "
     "(access.contacts) [MISSING_SCOPES]: the credentials were refused or lack a permission the request needs: "
     "check the credentials in HUBSPOT_CLIENT_ID (auth.client_id_env), HUBSPOT_CLIENT_SECRET "
     "(auth.client_secret_env), HUBSPOT_REFRESH_TOKEN (auth.refresh_token_env) and the settings read from "
     "HUBSPOT_API_BASE, HUBSPOT_OAUTH_VERSION"),
    # Both PERMISSION_DENIED to Google's status; its reason tells staff which to fix.
    (_ga4_property_not_granted, "system ga4: Google Analytics 4 answered HTTP 403 to POST "
     "/userDeletion/userDeletionRequests:upsert (erase.user_deletion) [PERMISSION_DENIED, insufficientPermissions]: "
     + _GA4_CHECK),
    (_ga4_api_not_enabled, "system ga4: Google Analytics 4 answered HTTP 403 to POST "
     "/userDeletion/userDeletionRequests:upsert (erase.user_deletion) [PERMISSION_DENIED, accessNotConfigured]: "
     + _GA4_CHECK),
])
async def test_a_refused_credential_flags_the_task_naming_what_to_check(pool, monkeypatch, tmp_path, refused, said):
    """A 401 or 403 the service answers once its credentials are sent is permanent (no retry for
    ever: the task needs staff), and its message names the variables that hold the credentials and
    the settings, which staff change. Before, it said only "the credentials were refused or lack a
    permission the request needs", whichever of the deployment's variables it was."""
    async with refused(monkeypatch, tmp_path, pool) as run:
        with pytest.raises(PermanentConnectorError) as raised:
            await run()
    assert str(raised.value) == said


async def test_a_ga4_erasure_under_way_sends_nothing_after_its_request_is_withdrawn(pool, monkeypatch, tmp_path):
    """Three identifiers; the request is withdrawn once Google accepted the first. The run stops
    before the second (as a run at any other SaaS stops before its next change), the close's record
    counts the one Google accepted, and the withdrawal letter says so. Before, the run asked Google
    to delete under all three after the subject had withdrawn, and the letter said nothing of GA4."""
    accepted = http_connector.mark_accepted

    async with google_served(monkeypatch, tmp_path) as (app, _):
        loaded = _policy(tmp_path)
        rid = await _request_with_identifiers(pool, loaded, [("CLIENT_ID", f"GA1.1.{n}.{n}") for n in range(3)])

        async def withdrawn_after_the_first(*args: Any) -> None:
            await accepted(*args)
            async with pool.acquire() as conn:
                await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:test-withdrawn", actor="test")

        monkeypatch.setattr(http_connector, "mark_accepted", withdrawn_after_the_first)
        system = connector(loaded, "ga4", pool)
        try:
            with pytest.raises(ApplicationError) as stopped:
                await system.erase(subject("tracked@example.com", rid))
        finally:
            await system.close()
    assert stopped.value.type == "HttpRunRequestClosed"
    assert len(app.state.data.requests) == 1
    task = await pool.fetchrow("SELECT partial_changed, partial_unsure FROM system_tasks WHERE request_id = $1",
                               uuid.UUID(rid))
    assert (task["partial_changed"], task["partial_unsure"]) == (1, None)
    letter = await as_sent("cancellation", "erasure", {"reason": "Withdrawn", "withdrawn": True, "acted_in": [],
                                                        "asked_in": ["ga4"]}, pool=pool, id=rid)
    said = " ".join(letter.text.split())
    # (The letter names the system as the default policy does, which has no ga4 of its own.)
    assert "Our automated work in our system “ga4” stopped before it was finished; by then it had made 1 change to your " \
           "records there" in said, said


async def test_a_ga4_kept_whole_is_erased_when_its_hold_is_released_while_the_request_is_open(
        pool, monkeypatch, tmp_path):
    """A legal-claims hold kept the GA4 identifiers (its task done, "kept under a legal-claims
    hold"), and compliance releases it while the request still waits on another system: the
    sweep's erasure by identity (activities/deferred.py, released_hold) sends them. A request
    closed unanswered has cleared its identifiers' values: none is sent. Before, the erasure ran on
    the task's journal, whose refusal (a result had ended that task) stopped it before its first
    deletion request; and a cleared identifier went to Google as the text "None"."""
    async with google_served(monkeypatch, tmp_path) as (app, _):
        loaded = _policy(tmp_path)
        open_ = await _request_with_identifiers(pool, loaded, [("CLIENT_ID", "GA1.1.1.1")])
        await pool.execute("INSERT INTO system_tasks (request_id, system, action, status, attempt, message) "
                           "VALUES ($1, 'ga4', 'erase', 'done', 1, 'kept under a legal-claims hold')", uuid.UUID(open_))
        closed = await _request_with_identifiers(pool, loaded, [("CLIENT_ID", "GA1.1.2.2")])
        async with pool.acquire() as conn:
            await set_status(conn, closed, RequestStatus.denied, event_key=f"{closed}:test-denied", actor="test")
        released = ErasureContext(today=date.today(), released_hold=True)
        system = connector(loaded, "ga4", pool)
        try:
            outcome = await system.erase(subject("tracked@example.com", open_), released)
            await system.erase(subject("tracked@example.com", closed), released)
        finally:
            await system.close()
    assert outcome.status == "done" and outcome.datasets == {"identifiers": {"found": 1, "submitted": 1}}
    assert [r["userId"] for r in app.state.data.requests] == ["GA1.1.1.1"]
