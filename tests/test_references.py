"""The short reference people read and type: the same in Python and in PostgreSQL, unambiguous,
and it finds its request in the portal's status lookup, the console's search box and the REST API."""

from __future__ import annotations

import uuid

from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.references import ALPHABET, LENGTH, short_reference, typed_reference
from dsrflow.stores import requests_store
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from tests.support import console_sign_in, staff_headers, unique_email
from tests.test_console_pages import open_request


async def test_python_and_postgres_agree_and_nothing_looks_alike(pool):
    ids = [uuid.uuid4() for _ in range(200)] + [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
    in_sql = await pool.fetch("SELECT i, dsr_reference(i) AS ref FROM unnest($1::uuid[]) AS i", ids)
    assert {str(r["i"]): r["ref"] for r in in_sql} == {str(i): short_reference(i) for i in ids}
    assert not set("01IO") & set(ALPHABET) and len(set(ALPHABET)) == 32
    ref = short_reference(ids[0])
    assert len(ref) == LENGTH == 10
    assert typed_reference(f" {ref[:5].lower()}-{ref[5:]} ") == ref
    assert typed_reference("0" * 10) is None and typed_reference(ref[:-1]) is None


async def test_a_reference_finds_its_request_wherever_it_is_typed(http, pool):
    rid = await open_request(http, pool)
    ref = short_reference(rid)
    typed = f"{ref[:5].lower()} {ref[5:]}"
    portal = await http.get("/portal/status", params={"reference": typed})
    assert portal.status_code == 303 and portal.headers["location"] == f"/portal/requests/{rid}"
    full = await http.get("/portal/status", params={"reference": rid})
    assert full.headers["location"] == f"/portal/requests/{rid}"
    unknown = await http.get("/portal/status", params={"reference": "ZZZZZZZZZZ" if ref != "ZZZZZZZZZZ" else "YYYYYYYYYY"})
    assert unknown.status_code == 422

    api = await http.get(f"/v1/requests/{ref}", headers=await staff_headers(pool, "agent"))
    assert api.status_code == 200 and api.json()["id"] == rid and api.json()["reference"] == ref

    await console_sign_in(http, pool, "agent")
    found = await http.get("/console/", params={"q": typed})
    assert found.status_code == 303 and found.headers["location"] == f"/console/requests/{rid}"
    page = await http.get(f"/console/requests/{ref}")
    assert page.status_code == 303 and page.headers["location"] == f"/console/requests/{rid}"


async def test_an_id_whose_reference_is_taken_is_drawn_again(pool, settings, monkeypatch):
    """Two ids sharing their first 50 bits would share a reference: the second request gets
    another id instead of being refused."""
    first, _ = await create_request(pool, NewRequest(type="access", subject={"email": unique_email("ref")}),
                                    loaded_policy=load_policy(settings.policy_path), secret=load_secret_key(settings),
                                    actor="test", idempotency_key=None)
    clash = uuid.UUID(int=(first["id"].int & ~((1 << 78) - 1)) | (uuid.uuid4().int & ((1 << 78) - 1)))
    assert short_reference(clash) == short_reference(first["id"]) and clash != first["id"]
    drawn = iter([clash, fresh := uuid.uuid4()])
    monkeypatch.setattr(requests_store.uuid, "uuid4", lambda: next(drawn))
    second, created = await create_request(pool, NewRequest(type="access", subject={"email": unique_email("ref")}),
                                           loaded_policy=load_policy(settings.policy_path),
                                           secret=load_secret_key(settings), actor="test", idempotency_key=None)
    assert created and second["id"] == fresh
