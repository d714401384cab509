"""A processor's or a service's JSON answer of tiny values (`[{},{},...]`, `{"a":0,"b":0,...}`):
valid, within the 32 MiB cap, it cost the shared worker about a gigabyte to read (the depth scan's
pieces of text, then the parser's objects: 50 to 90 bytes a value), so one forged processor could
have the worker killed with every request's steps on it. Now an answer may hold one value for each
16 bytes of the cap its client reads under (activities/connectors/bounded_http.py VALUE_BYTES),
counted before any parser sees it; past that it is refused naming the fault, as the connectors
and the callback endpoint refuse any other malformed answer. Real answers fit: a SaaS page of
1,000 records of 50 fields, an OpenDSR results document of 20 MiB of records. The cost of the
largest answers, each in a process of its own: tests/test_json_scan_cost.py."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activities.connectors.base import PermanentConnectorError
from activities.connectors.bounded_http import (
    ANSWER_BYTES,
    DOCUMENT_BYTES,
    VALUE_BYTES,
    NotJson,
    TooMany,
    bounded_client,
    json_bytes,
    json_document,
)
from activities.connectors.http_client import ANSWER_MIB
from activities.connectors.opendsr_answers import OpenDsrMalformed
from activities.errors import is_deterministic
from api.body_limits import DEFAULT_LIMIT
from policy.model import load_policy
from tests.fanout_stack import served
from tests.processor_identity import processor_identity
from tests.saas_support import collect, connector, stripe_served, subject
from tests.support import assert_problem, live_client, unique_email
from tests.test_opendsr_hostile_answers import HostileProcessor
from tests.untrusted_support import (
    CALLBACK,
    PROCESSOR,
    api_over_http,
    pending_erasure,
    processor_policy,
    rfc3339,
    running_processor,
    staff_read_the_processors_fault,
)
from workers.dsr_worker import build_worker

MIB = 1024 * 1024
HTTP_BYTES = ANSWER_MIB * MIB  # the http connector's cap


def more(cap: int) -> str:
    return f"holds more than {cap // VALUE_BYTES:,} JSON values"


def zeros(count: int) -> bytes:
    """A list of `count` zeros: `count` + 1 values."""
    return b"[" + b"0," * (count - 1) + b"0]"


def filled(item: bytes, size: int) -> bytes:
    """A list of as many `item`s as `size` bytes hold."""
    return b"[" + b",".join([item] * (size // (len(item) + 1) - 1)) + b"]"


def distinct_keys(size: int) -> bytes:
    """An object of as many short distinct keys as `size` bytes hold (Python keeps each one)."""
    return b"{" + b",".join([b'"%x":0' % n for n in range(size // 10)]) + b"}"


async def test_the_count_follows_the_cap_the_answer_was_read_under():
    """A discovery document's client reads 1 MiB, the http connector's 8 MiB, the others' 32 MiB:
    one value for each 16 bytes (the list and each of its zeros). What is no JSON is still named
    for what it is, however many commas it holds."""
    async def answer(request: Request) -> Response:
        count = int(request.path_params["count"])
        if request.path_params["kind"] == "html":
            return Response(b"<html><body>" + b"a," * count + b"</body></html>", media_type="text/html")
        return Response(zeros(count), media_type="application/json")

    async with served(Starlette(routes=[Route("/{kind}/{count}", answer)])) as url:
        for cap in (DOCUMENT_BYTES, HTTP_BYTES, ANSWER_BYTES):
            async with bounded_client(limit=cap, timeout=30) as client:
                allowed = cap // VALUE_BYTES
                assert len(json_document(await client.get(f"{url}/zeros/{allowed - 1}"))) == allowed - 1
                with pytest.raises(TooMany) as refused:
                    json_document(await client.get(f"{url}/zeros/{allowed}"))
                assert str(refused.value) == more(cap)
                with pytest.raises(NotJson) as html:
                    json_document(await client.get(f"{url}/html/{allowed * 2}"), labelled=False)
                assert str(html.value) == "is HTML, not JSON"


SHAPES = {
    "zeros": zeros(DOCUMENT_BYTES // 2 - 1),
    "empty objects": filled(b"{}", DOCUMENT_BYTES),
    "lists holding an empty list": filled(b"[[]]", DOCUMENT_BYTES),
    "objects holding an empty object": filled(b'{"a":{}}', DOCUMENT_BYTES),
    "floats": filled(b"0.5", DOCUMENT_BYTES),
    "strings of a 4-byte character": filled('"\U0001F600"'.encode(), DOCUMENT_BYTES),
    "strings with escaped quotes": filled(b'"\\"a\\\\"', DOCUMENT_BYTES),
    "distinct keys": distinct_keys(DOCUMENT_BYTES),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_costliest_shapes_are_refused_before_parsing_naming_the_fault(shape):
    """Valid JSON to the cap (here a discovery document's), refused by the count."""
    body = SHAPES[shape]
    assert len(body) <= DOCUMENT_BYTES
    json.loads(body)  # valid
    with pytest.raises(TooMany) as refused:
        json_bytes(body, cap=DOCUMENT_BYTES)
    assert str(refused.value) == more(DOCUMENT_BYTES)


def test_what_strings_hold_is_not_counted():
    """Commas, colons and brackets inside strings (escaped quotes and backslashes among them) are
    text, not values: a document of two strings full of them is read."""
    text = 'a, b: [c], {d}, \\"e, f\\" \\\\'
    body = json.dumps({"note": text * 20_000}).encode()
    assert len(body) <= DOCUMENT_BYTES
    assert json_bytes(body, cap=DOCUMENT_BYTES) == {"note": text * 20_000}


# Records as real services hold them: ids, names, addresses, dates, amounts, user agents.
def _contact(n: int) -> dict[str, Any]:
    return {"id": f"cnt_{n:09d}", "email": f"ada.lovelace+{n}@example.com", "first_name": "Ada",
            "last_name": "Lovelace", "phone": "+44 20 7946 0958", "created_at": f"2024-03-{n % 28 + 1:02d}T09:31:22Z",
            "marketing_opt_in": n % 2 == 0, "language": "en", "tags": ["vip", "newsletter"],
            "address": {"line1": f"{n % 200} Example Street", "city": "London", "postcode": "N1 9GU",
                        "country": "GB"}}


def _order(n: int) -> dict[str, Any]:
    return {"id": f"ord_{n:09d}", "created_at": f"2024-05-{n % 28 + 1:02d}T12:00:{n % 60:02d}Z",
            "status": ("paid", "shipped", "refunded")[n % 3], "currency": "EUR", "total": 1000 + n % 9000,
            "items": [{"sku": f"SKU-{10000 + n % 90000}", "name": "Wireless headphones", "quantity": 1 + n % 3,
                       "unit_price": 1000 + n % 9000}],
            "shipping": {"method": "standard", "carrier": "DHL", "tracking": f"JD{n:012d}"}}


def _event(n: int) -> dict[str, Any]:
    return {"timestamp": f"2024-06-{n % 28 + 1:02d}T10:{n % 60:02d}:00Z", "event": "page_view",
            "url": f"https://shop.example.com/products/{n % 99999}", "ip": f"203.0.113.{n % 254 + 1}",
            "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0",
            "session_id": f"{n * 2654435761 % 2**64:016x}", "duration_ms": n % 50_000}


def results_document(size: int) -> bytes:
    """An OpenDSR results document of about `size` bytes: contacts, orders and events in equal
    parts, as compact as JSON is written (the most values for its bytes)."""
    datasets = []
    for kind in (_contact, _order, _event):
        each = len(json.dumps(kind(0), separators=(",", ":"))) + 1
        datasets.append({"name": kind.__name__[1:] + "s", "records": [kind(n) for n in range(size // 3 // each)]})
    return json.dumps({"datasets": datasets}, separators=(",", ":")).encode()


def saas_page(records: int = 1000, fields: int = 50) -> bytes:
    return json.dumps({"results": [{"id": str(100_000 + r), "properties": {
        f"property_{f:02d}": f"value {r}-{f}" if f % 3 else r * f for f in range(fields)}} for r in range(records)],
        "paging": {"next": {"after": str(records)}}}, separators=(",", ":")).encode()


async def test_real_answers_are_read_whole():
    """A SaaS page of 1,000 records of 50 fields (about 105,000 values in 1.2 MiB: the http
    connector's 8 MiB allow 524,288), and an OpenDSR results document of 20 MiB of records (about
    1.8 million values, at about 12 bytes each the densest of real records; 32 MiB allow 2,097,152)."""
    page, results = saas_page(), results_document(20 * MIB)

    async def answer(request: Request) -> Response:
        return Response(page if request.url.path == "/page" else results, media_type="application/json")

    async with served(Starlette(routes=[Route("/page", answer), Route("/results", answer)])) as url:
        async with bounded_client(limit=HTTP_BYTES, timeout=30) as client:
            assert len(json_document(await client.get(f"{url}/page"))["results"]) == 1000
        async with bounded_client(timeout=30) as client:
            read = json_document(await client.get(f"{url}/results"))
    assert [len(d["records"]) for d in read["datasets"]] == [len(d["records"]) for d in json.loads(results)["datasets"]]


async def test_a_saas_page_of_too_many_values_is_refused_naming_the_system(tmp_path, pool, monkeypatch):
    """Stripe's customers answered as 300,000 empty objects (900 KB, far inside the http
    connector's 8 MiB): the read ends naming the system, the call and the fault, as for any answer
    that is not the document asked for."""
    page = b'{"object": "list", "has_more": false, "data": ' + filled(b"{}", 900_000) + b"}"
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        app.state.standin.tamper("/v1/customers", lambda _, __: Response(page, media_type="application/json"),
                                 method="GET")
        reader = connector(loaded, "billing_stripe", pool)
        try:
            with pytest.raises(PermanentConnectorError) as refused:
                await collect(reader, subject("ada@example.com"))
        finally:
            await reader.close()
    assert str(refused.value) == ("system billing_stripe: Stripe's answer to GET /v1/customers (access.customers) "
                                  f"{more(HTTP_BYTES)}: not read")


@pytest.fixture
async def hostile():
    fake = HostileProcessor(*processor_identity())
    async with served(fake.app()) as url:
        fake.url = url
        yield fake


def million_empty(route: str) -> tuple[bytes, str]:
    """An answer of a million empty objects (3 MiB), as `route` of the processor gives them."""
    records = filled(b"{}", 3 * MIB)
    if route == "results":
        return b'{"datasets": [{"name": "contacts", "records": ' + records + b"}]}", "application/json"
    return b'{"api_version": "2.0", "extensions": ' + records + b"}", "application/json"


async def test_a_processors_results_of_a_million_empty_records_are_refused_naming_the_fault(
        pool, settings, tmp_path, lifecycle_policy, hostile):
    """The results of an access request: refused before parsing as a malformed answer (retried as
    the processor being unavailable), naming the system, the call and the fault."""
    hostile.hostile["results"] = million_empty("results")
    opendsr = connector(load_policy(processor_policy(tmp_path, lifecycle_policy, {
        "base_url": f"{hostile.url}/opendsr", "poll_interval_seconds": 0.05, "verify_signatures": False})),
        PROCESSOR, pool, settings)
    try:
        with pytest.raises(OpenDsrMalformed) as refused:
            await collect(opendsr, subject(unique_email("values")))
    finally:
        await opendsr.close()
    assert str(refused.value) == (f"system {PROCESSOR}: the processor's answer to the results request "
                                  f"(GET /opendsr/results/1) {more(ANSWER_BYTES)}")
    assert not is_deterministic(refused.value)


async def test_staff_read_that_the_processors_answer_held_too_many_values(
        settings, pool, time_skipping, hostile, tmp_path, lifecycle_policy, mail_sink, task_queue):
    """An erasure at a processor whose discovery document carries a million empty objects, on
    every try: refused each time before parsing, retried, and once retries run out the task needs
    staff, whose page and alert name the system, the call and the fault. (An access request's
    results are read by the package, which waits for staff the same way: tests/test_attack_processor_data.py.)"""
    env = time_skipping
    hostile.hostile["discovery"] = million_empty("discovery")
    ours = settings.model_copy(update={"task_queue": task_queue, "policy_path": processor_policy(
        tmp_path, lifecycle_policy, {"base_url": f"{hostile.url}/opendsr"})})
    said = (f"system {PROCESSOR}: the processor's answer to discovery (GET /opendsr/discovery) "
            f"{more(ANSWER_BYTES)}")
    await staff_read_the_processors_fault(env, ours, pool, mail_sink, said)


@pytest.fixture
async def processor():
    async with running_processor() as fake:
        yield fake


async def test_a_signed_callback_of_too_many_values_is_refused_naming_the_fault(
        settings, pool, dev_server, processor, tmp_path, lifecycle_policy, task_queue):
    """A processor signs a callback for its own pending erasure that carries, beside a right
    status, 20,000 values (40 KB, inside the endpoint's 256 KiB): the body cap allows 16,384. 422
    naming the fault, nothing recorded; the same callback without them is heard."""
    policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr"})
    ours = settings.model_copy(update={"policy_path": policy, "task_queue": task_queue})
    async with build_worker(dev_server.client, ours, pool, task_queue=task_queue), \
            api_over_http(ours, dev_server.client) as url, live_client(base_url=url) as http:
        request_id, external_id = await pending_erasure(http, pool)
        callback = {"subject_request_id": external_id, "request_status": "in_progress",
                    "status_changed_time": rfc3339(dt.datetime.now(dt.UTC))}
        body, headers = processor.signed({**callback, "extensions": [0] * 20_000})
        assert len(body) < DEFAULT_LIMIT
        refused = await http.post(CALLBACK, content=body, headers=headers)
        problem = assert_problem(refused, 422)
        assert (problem["title"], problem["detail"]) == ("Malformed callback", f"the body {more(DEFAULT_LIMIT)}")
        assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND actor = $2",
                                   uuid.UUID(request_id), f"processor:{PROCESSOR}") == 0
        body, headers = processor.signed(callback)
        heard = await http.post(CALLBACK, content=body, headers=headers)
        assert heard.status_code == 202, heard.text


# One emoji makes Python hold every character of its string in 4 bytes: the worst strings for
# their bytes are ASCII with one emoji, written as UTF-8 or as the escape of its surrogate pair.
_WIDE_READ = """
import json
import httpx
from activities.connectors.bounded_http import ANSWER_BYTES, NotJson, json_document
CAP, WIDE = ANSWER_BYTES, ANSWER_BYTES // 4  # bounded_http.WIDE_BYTES

def kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))

body = {body}
assert len(body) <= CAP
answer = httpx.Response(200, content=body, headers={{"content-type": "application/json"}})
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # the peak so far (building the body) is forgotten: it is the reading's from here
before = kib("VmRSS:")
try:
    said = "read" if json_document(answer) else "empty"
except NotJson as exc:
    said = str(exc)
print(json.dumps({{"said": said, "grew_mb": (kib("VmHWM:") - before) / 1024}}))
"""
WIDE_BODIES = {
    # One emoji, then ASCII to the cap (the old reader: about 290 MB): refused before parsing.
    "one emoji in 32 MiB of ASCII": (
        "b'{\"datasets\":[{\"name\":\"notes\",\"records\":[{\"note\":\"\\xf0\\x9f\\x98\\x80' + b'a' * (CAP - 60) "
        "+ b'\"}]}]}'",
        "holds more than 8,388,608 characters in strings with an emoji or another character past U+FFFF"),
    # As many such characters as are let through, escaped (the parser's buffer), the rest of the
    # cap one string of 2 bytes a character (a euro sign, escaped too): read.
    "escaped, to the bound": (
        "b'[\"\\\\ud83d\\\\ude00' + b'a' * (WIDE - 9) + b'\",\"\\\\u20ac' + b'a' * (CAP - WIDE - 40) + b'\"]'", "read"),
}


def test_strings_of_4_byte_characters_cost_a_small_multiple_of_the_answer():
    """Each body read in a process of its own, its peak measured past the answer's own bytes: the
    first was read for 256 MB (the answer decoded whole at 4 bytes a character, then its string),
    the second for 112; now the first is refused before parsing (under 1 MB) and the worst let
    through is read for 96 MB (docs/security.md)."""
    for name, (body, said) in WIDE_BODIES.items():
        done = subprocess.run([sys.executable, "-c", _WIDE_READ.format(body=body)], capture_output=True,
                              text=True, timeout=60, check=True)
        read = json.loads(done.stdout)
        assert read["grew_mb"] < 150, f"{name}: {read['grew_mb']:.0f} MB"
        assert read["said"] == said, name


def test_text_with_emoji_is_read_as_written_in_any_json_encoding():
    """Real text with emoji and accents, as UTF-8 (with or without a byte-order mark), escaped, or
    as UTF-16 or -32: read as json.loads reads it."""
    document = {"name": "Zoë 😀", "notes": ["Café ☕ at 8 €", "👍🏽 done"], "ok": True}
    for body in (json.dumps(document, ensure_ascii=False).encode(), json.dumps(document).encode(),
                 b"\xef\xbb\xbf" + json.dumps(document, ensure_ascii=False).encode(),
                 json.dumps(document).encode("utf-16"), json.dumps(document, ensure_ascii=False).encode("utf-32-le")):
        assert json_bytes(body) == document
