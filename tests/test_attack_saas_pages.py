"""A SaaS API that answers the http connector's reads the way a broken or hostile service could:
pages that lead in a circle, a total that lies, pages of more records than any subject has, an
answer without end, sent a byte at a time or gzipped a thousand to one (or in an encoding not
asked for), a body that is not JSON or is JSON nested 100,000 deep. Each ends the read within
seconds with an error naming the system and what was wrong, holding a bounded amount of memory
(before: the read went on to `max_pages` at the service's pace, held every record, waited as long
as the service trickled, read a gzip answer past the cap, or failed with a decoder's error that
named nothing). The stand-ins are the shipped configurations' own, with a tamper switched on
(devstack/saas/common.py `StandIn.tamper`)."""

from __future__ import annotations

import asyncio
import copy
import gzip
import re
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.responses import HTMLResponse, Response, StreamingResponse

from activities.connectors.base import PermanentConnectorError
from policy.model import DEFAULT_POLICY
from tests.saas_support import (
    collect,
    connector,
    http_policy,
    hubspot_served,
    mailchimp_served,
    stripe_served,
    subject,
)
from tests.yaml_files import read_yaml

STRIPE = read_yaml(DEFAULT_POLICY.parent / "http/stripe.yaml")
# Longer than any of these reads takes once it stops where it should: the old code was still
# reading (or waiting) when it ran out.
PATIENCE = 30


async def read(loaded, name: str, pool) -> list:
    reader = connector(loaded, name, pool)
    try:
        return await asyncio.wait_for(collect(reader, subject("ada@example.com")), PATIENCE)
    finally:
        await reader.close()


async def test_a_cursor_given_again_ends_the_read(tmp_path, pool, monkeypatch):
    """HubSpot's `paging.next.after` the same on every page: the second page says so."""
    async with hubspot_served(monkeypatch, tmp_path) as (app, loaded, _):
        app.state.data.add_contact("ada@example.com", "Ada", "Lovelace")
        app.state.standin.tamper("/contacts/search", lambda _, doc: {**doc, "paging": {"next": {"after": "7"}}})
        with pytest.raises(PermanentConnectorError, match=r"system crm_hubspot: HubSpot's answer to POST "
                           r"/crm/v3/objects/contacts/search \(access\.contacts\) gave a next page it had given "
                           r"before: its pages lead in a circle: not read"):
            await read(loaded, "crm_hubspot", pool)
        assert len(app.state.standin.requests("POST", "/contacts/search")) == 2


async def test_pages_that_lead_back_to_an_earlier_one_end_the_read(tmp_path, pool, monkeypatch):
    """Stripe's pages A, B, A, B...: each cursor is new to the page before, the page is not."""
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        ids = [app.state.data.add_customer("ada@example.com", "Ada Lovelace") for _ in range(2)]

        def circle(request, _document: Any) -> dict[str, Any]:
            row = app.state.data.customers[ids[1] if request.query_params.get("starting_after") == ids[0] else ids[0]]
            return {"object": "list", "data": [row], "has_more": True, "url": "/v1/customers"}

        app.state.standin.tamper("/v1/customers", circle, method="GET")
        with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: Stripe's answer to GET /v1/customers "
                           r"\(access\.customers\) answered a page of records it had answered before"):
            await read(loaded, "billing_stripe", pool)
        assert len(app.state.standin.requests("GET", "/v1/customers")) == 3


async def test_a_total_that_lies_over_an_offset_the_service_ignores(tmp_path, pool, monkeypatch):
    """Mailchimp says a billion audiences and answers the first page whatever the offset."""
    async with mailchimp_served(monkeypatch, tmp_path) as (app, loaded, _):
        app.state.data.add_list("Newsletter")
        first: dict[str, Any] = {}

        def ignore_offset(request, document: Any) -> Any:
            if not request.url.path.endswith("/lists"):
                return document
            return {**first.setdefault("page", document), "total_items": 10**9}

        app.state.standin.tamper("/3.0/lists", ignore_offset, method="GET")
        with pytest.raises(PermanentConnectorError, match=r"system newsletter: Mailchimp's answer to GET /3\.0/lists "
                           r"\(access\.lists\) answered a page of records it had answered before"):
            await read(loaded, "newsletter", pool)
        assert len([s for s in app.state.standin.served if s.path.endswith("/lists")]) == 2


async def test_more_records_or_bytes_than_any_subject_has_end_the_read(tmp_path, pool, monkeypatch):
    """One page of 20,000 customers (each would be asked for its invoices and charges), then
    pages without end of a customer a megabyte long: the action stops at `max_records` and at
    `max_read_mib`, where it held them all and went on asking."""
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        crowd = {"object": "list", "data": [{"id": f"cus_{i:05d}", "email": "ada@example.com"} for i in range(20_000)],
                 "has_more": False, "url": "/v1/customers"}
        app.state.standin.tamper("/v1/customers", lambda _, __: crowd, method="GET")
        with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: access\.customers found more than "
                           r"10000 records \(max_records\) in Stripe in one action"):
            await read(loaded, "billing_stripe", pool)
        assert app.state.standin.requests("GET", "/v1/invoices") == []

        pages = iter(range(10**6))

        def heavy(_request, _document: Any) -> dict[str, Any]:
            row = {"id": f"cus_{next(pages):07d}", "email": "ada@example.com", "description": "x" * 1024 * 1024}
            return {"object": "list", "data": [row], "has_more": True, "url": "/v1/customers"}

        app.state.standin.tampers.clear()
        app.state.standin.tamper("/v1/customers", heavy, method="GET")
        with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: GET /v1/customers \(access\.customers\) "
                           r"read more than 32 MiB of answers \(max_read_mib\) from Stripe in one action"):
            await read(loaded, "billing_stripe", pool)
        assert len(app.state.standin.requests("GET", "/v1/customers")) == 1 + 32  # 32 pages of a MiB and more


async def test_an_answer_of_many_megabytes_is_not_read_past_the_cap_nor_asked_again(tmp_path, pool, monkeypatch):
    async def endless() -> AsyncIterator[bytes]:
        # 40 MiB, past the old cap too: finite, since a server in this event loop whose client
        # has gone would otherwise go on writing without ever yielding to it.
        yield b'{"object": "list", "data": ["'
        for _ in range(640):
            yield b"x" * 65536
            await asyncio.sleep(0)

    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        app.state.standin.tamper("/v1/customers", lambda _, __: StreamingResponse(endless(), media_type="application/json"),
                                 method="GET")
        with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: Stripe's answer to GET /v1/customers "
                           r"\(access\.customers\) was longer than 8 MiB, far more than a page of its API: not read"):
            await read(loaded, "billing_stripe", pool)
        assert len(app.state.standin.requests("GET", "/v1/customers")) == 1


async def test_an_answer_sent_a_byte_at_a_time_is_cut_off_at_the_deadline(tmp_path, pool, monkeypatch):
    """Each byte well within the one-second wait for the next: before, nothing ever timed out."""
    async def trickle() -> AsyncIterator[bytes]:
        while True:
            yield b" "
            await asyncio.sleep(0.3)

    config = copy.deepcopy(STRIPE)
    config["timeout_seconds"] = 1  # an answer must be whole within four
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, _, _):
        loaded = http_policy(tmp_path, {"billing_stripe": {"label": "Stripe", "connector": "http", "config": config}})
        app.state.standin.tamper("/v1/customers", lambda _, __: StreamingResponse(trickle(), media_type="application/json"),
                                 method="GET")
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionError, match=r"system billing_stripe: GET /v1/customers \(access\.customers\) "
                           r"failed: its answer did not arrive whole in time \(sent too slowly\)"):
            await read(loaded, "billing_stripe", pool)
        assert asyncio.get_running_loop().time() - started < 10
        assert len(app.state.standin.requests("GET", "/v1/customers")) == 1  # the activity's retry comes later


@pytest.mark.parametrize(("answer", "said"), [
    (HTMLResponse("<html><body>Please sign in to the proxy</body></html>"), "is text/html, not JSON"),
    (Response(b"[" * 100_000 + b"]" * 100_000, media_type="application/json"), "is JSON nested deeper than 32 levels"),
    (Response(b'{"data": [' * 40 + b"]}" * 40, media_type="application/json"), "is JSON nested deeper than 32 levels"),
    (Response(b'{"object": "list", "data": [', media_type="application/json"), "is not valid JSON"),
])
async def test_an_answer_that_is_not_a_json_document_names_the_system(tmp_path, pool, monkeypatch, answer, said):
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        app.state.standin.tamper("/v1/customers", lambda _, __: answer, method="GET")
        with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: Stripe's answer to GET /v1/customers "
                           rf"\(access\.customers\) {said}: not read"):
            await read(loaded, "billing_stripe", pool)


def _gzip_bomb() -> bytes:
    """A Stripe page of 20 MiB (a customer whose name is that long), gzipped to about 20 KB."""
    body = gzip.compress(b'{"object": "list", "has_more": false, "data": [{"id": "cus_1", "name": "'
                         + b"x" * (20 * 1024 * 1024) + b'"}]}', 6)
    assert len(body) < 32 * 1024
    return body


async def test_an_answer_gzipped_a_thousand_to_one_is_not_read_past_the_cap(tmp_path, pool, monkeypatch):
    """The cap was on the bytes received, and httpx inflated a gzip answer after it: 20 KB of
    gzip were read as a 20 MiB page (200 KB as 200 MiB), and the 8 MiB a SaaS answer may hold
    (32 MiB for a processor's) let 8 GiB in. Now the answer is inflated within the cap, a slice at
    a time, and refused at it."""
    bomb = _gzip_bomb()
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        app.state.standin.tamper("/v1/customers", lambda _, __: Response(
            bomb, media_type="application/json", headers={"Content-Encoding": "gzip"}), method="GET")
        with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: Stripe's answer to GET /v1/customers "
                           r"\(access\.customers\) was longer than 8 MiB, far more than a page of its API: not read"):
            await read(loaded, "billing_stripe", pool)
        assert len(app.state.standin.requests("GET", "/v1/customers")) == 1


@pytest.mark.parametrize(("encoding", "body", "said"), [
    ("gzip", gzip.compress(b'{"ok": true}'), None),
    ("deflate", zlib.compress(b'{"ok": true}'), None),
    ("deflate", zlib.compress(b'{"ok": true}')[2:-4], None),  # raw deflate, as some servers send it
    ("GZIP", gzip.compress(b'{"ok": true}'), None),
    ("gzip", gzip.compress(b'{"ok": true}')[:-12], "answered a gzip body cut short"),
    ("gzip", b'{"ok": true}', "answered a body that is not gzip as it said"),
    ("br", b'{"ok": true}', "answered in the content encoding 'br', which was not asked for"),
    ("gzip, gzip", gzip.compress(gzip.compress(b'{"ok": true}')),
     "answered in the content encoding 'gzip, gzip', which was not asked for"),
], ids=["gzip", "deflate", "raw deflate", "GZIP", "gzip cut short", "not gzip", "br", "gzip twice"])
async def test_an_answers_encoding_is_read_within_the_cap_or_refused(encoding, body, said):
    """What the client asks for (gzip, deflate) is inflated as before; what it did not ask for (an
    encoding httpx would inflate without a cap once a package for it is installed, or two in a
    row) or a body that is not what it says is refused as the service failing, naming the host."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    from activities.connectors.bounded_http import AnswerEncoded, bounded_client
    from tests.fanout_stack import served

    asked: list[str] = []

    async def answer(request: Request) -> Response:
        asked.append(request.headers.get("accept-encoding", ""))
        return Response(body, media_type="application/json", headers={"Content-Encoding": encoding})

    async with served(Starlette(routes=[Route("/a", answer)])) as url, bounded_client(timeout=10) as client:
        if said is None:
            assert (await client.get(f"{url}/a")).json() == {"ok": True}
        else:
            with pytest.raises(AnswerEncoded, match=rf"127\.0\.0\.1/a {re.escape(said)}"):
                await client.get(f"{url}/a")
    assert asked == ["gzip, deflate"]
