"""What a processor, or a SaaS API, can make staff and subjects read: every value it sends back,
followed to where it is shown (the request page, the evidence pack, the package and its summary,
the messages staff read of a task). A compromised processor signs what it likes and answers what
it likes; tests/test_attack_callbacks.py covers its callbacks and its upload link. Each attack
here is against the real connector over loopback, or the whole stack over HTTP (uvicorn,
PostgreSQL, Temporal, a worker)."""

from __future__ import annotations

import asyncio
import html
import io
import re
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError

from activities.connectors.base import PermanentConnectorError
from activities.package_summary import part_files, render_summary
from activities.packages import spool_for
from policy.model import load_policy
from schemas.workflow import task_workflow_id
from tests.fanout_stack import served
from tests.processor_identity import processor_identity
from tests.saas_support import collect, connector, stripe_served, subject
from tests.support import live_client, staff_headers
from tests.untrusted_support import (
    PROCESSOR,
    FakeProcessor,
    api_over_http,
    pending_erasure,
    processor_policy,
)
from workers.dsr_worker import build_worker

SCRIPT = "<script>alert(1)</script>"
OVERRIDE = "\u202e"  # right-to-left override: what follows reads backwards


@dataclass
class AnsweringProcessor(FakeProcessor):
    """The untrusted-input tests' processor, answering what each test makes it answer: the
    `expected_completion_time` of a new job, the `request_status` of every job, the results
    document (at /opendsr/results/...), the answer to the `unsubscribe` extension."""

    expected: Any = "2099-01-01T00:00:00Z"
    state: Any = "completed"
    results: Any = None
    results_path: str = "/opendsr/results/1"
    unsubscribed: Any = None

    def app(self) -> Starlette:
        async def discovery(request: Request) -> Response:
            return JSONResponse(self.discovery_document(unsubscribe=True))

        async def certificate(request: Request) -> Response:
            return Response(self.cert_pem, media_type="application/x-pem-file")

        async def submit(request: Request) -> Response:
            body = await request.json()
            return JSONResponse({"subject_request_id": body["subject_request_id"],
                                 "expected_completion_time": self.expected}, status_code=201)

        async def status(request: Request) -> Response:
            return JSONResponse({"subject_request_id": request.path_params["rid"], "request_status": self.state,
                                 "results_url": f"{self.url}{self.results_path}"})

        async def results(request: Request) -> Response:
            if self.results is None:
                return JSONResponse({"error": "not here"}, status_code=404)
            return JSONResponse(self.results)

        async def unsubscribe(request: Request) -> Response:
            return JSONResponse(self.unsubscribed)

        return Starlette(routes=[
            Route("/opendsr/discovery", discovery), Route("/opendsr/cert.pem", certificate),
            Route("/opendsr/requests", submit, methods=["POST"]), Route("/opendsr/requests/{rid}", status),
            Route("/opendsr/results/{rest:path}", results), Route("/opendsr/unsubscribe", unsubscribe,
                                                                  methods=["POST"]),
        ])


@pytest.fixture
async def processor():
    key_pem, cert_pem = processor_identity()
    fake = AnsweringProcessor(key_pem, cert_pem)
    async with served(fake.app()) as url:
        fake.url = url
        yield fake


def _opendsr(processor: AnsweringProcessor, tmp_path, lifecycle_policy, pool, settings):
    policy = load_policy(processor_policy(tmp_path, lifecycle_policy, {
        "base_url": f"{processor.url}/opendsr", "verify_signatures": False, "poll_interval_seconds": 0.05}))
    return policy, connector(policy, PROCESSOR, pool, settings)


async def _acted(client, request_id: str) -> None:
    """Until the erasure's activity has finished (and so recorded what it returned)."""
    handle = client.get_workflow_handle(task_workflow_id(request_id, PROCESSOR, "erase", 1))
    for _ in range(300):
        history = await handle.fetch_history()
        if any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED for e in history.events):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the erasure's activity never finished")


async def test_an_expected_completion_time_that_is_no_time_is_shown_nowhere(
        settings, pool, dev_server, processor, tmp_path, lifecycle_policy, task_queue):
    """A processor answers a new erasure job with an `expected_completion_time` that is a script
    tag, a right-to-left override and 100 KB of text. Before, the task's message was "processor
    expects completion by " and all of it, in the evidence pack (HTML and JSON) and the task's
    row. Now only a time is stated, written as we write times; anything else is not repeated, and
    the job is followed as any other."""
    policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr"})
    ours = settings.model_copy(update={"policy_path": policy, "task_queue": task_queue})
    hostile = f"{SCRIPT}{OVERRIDE}2099-01-01T00:00:00Z" + "x" * 100_000
    async with build_worker(dev_server.client, ours, pool, task_queue=task_queue), \
            api_over_http(ours, dev_server.client) as url, live_client(base_url=url) as http:
        processor.expected = hostile
        refused, _ = await pending_erasure(http, pool)
        await _acted(dev_server.client, refused)
        processor.expected = "2099-01-01T01:30:00+01:00"
        stated, _ = await pending_erasure(http, pool)
        await _acted(dev_server.client, stated)

        headers = await staff_headers(pool, "compliance")
        evidence = {rid: await http.get(f"/v1/requests/{rid}/evidence", headers=headers) for rid in (refused, stated)}
        pack = {rid: await http.get(f"/v1/requests/{rid}/evidence.html", headers=headers)
                for rid in (refused, stated)}

    for answer in (*evidence.values(), *pack.values()):
        assert answer.status_code == 200, answer.text[-400:]
    messages = {rid: [t["message"] for t in evidence[rid].json()["results"] if t["system"] == PROCESSOR]
                for rid in (refused, stated)}
    assert messages == {refused: [None], stated: ["processor expects completion by 2099-01-01 00:30 UTC"]}
    for shown in (evidence[refused].text, pack[refused].text):
        assert "xxxxxxxxxx" not in shown and "alert(1)" not in shown and OVERRIDE not in shown
        assert "\\u202e" not in shown
    assert "processor expects completion by 2099-01-01 00:30 UTC" in html.unescape(pack[stated].text)


async def test_what_staff_read_of_a_processors_access_job_is_ours_not_the_processors(
        pool, processor, tmp_path, lifecycle_policy, settings):
    """A processor answers an access job with a status of its own words (markup, an override, an
    e-mail address: another subject's), or points its results at a path of its own on its host
    that answers 404. The task's message (the request page, the staff alert, the audit trail)
    quoted both as sent. Now it names a status only when it is OpenDSR's, and the path with
    anything a path does not hold %-escaped, cut short."""
    _, opendsr = _opendsr(processor, tmp_path, lifecycle_policy, pool, settings)
    try:
        processor.state = f"failed {SCRIPT} {OVERRIDE}for grace@example.com"
        with pytest.raises(PermanentConnectorError) as unknown:
            await collect(opendsr, subject("ada@example.com"))
        processor.state = "cancelled"
        with pytest.raises(PermanentConnectorError) as cancelled:
            await collect(opendsr, subject("ada@example.com"))
        processor.state = "completed"
        processor.results_path = f"/opendsr/results/{SCRIPT}{OVERRIDE}" + "y" * 5000
        with pytest.raises(PermanentConnectorError) as missing:
            await collect(opendsr, subject("ada@example.com"))
    finally:
        await opendsr.close()
    assert str(unknown.value).endswith(" is in a status OpenDSR does not have")
    assert "<" not in str(unknown.value) and "grace" not in str(unknown.value)
    assert str(cancelled.value).endswith(" is cancelled")
    said = str(missing.value)
    assert said.startswith(f"system {PROCESSOR}: processor answered HTTP 404 to GET "
                           "/opendsr/results/%3Cscript%3Ealert(1)%3C/script%3E%E2%80%AEyyy"), said
    assert len(said) < 200 and said.endswith("y\u2026")


@pytest.mark.parametrize(("answer", "field"), [
    ({"matched": -3, "unsubscribed": -3}, "matched"),
    ({"matched": 2**40, "unsubscribed": 0}, "matched"),
    ({"matched": "lots", "unsubscribed": 1}, "matched"),
    ({"matched": True, "unsubscribed": True}, "matched"),
    ({"matched": 1, "unsubscribed": 1.5}, "unsubscribed"),
    ({"matched": 1, "unsubscribed": 7}, "unsubscribed"),
    ([1, 1], "matched"),
])
async def test_unsubscribe_counts_that_are_no_counts_are_refused_naming_the_field(
        pool, processor, tmp_path, lifecycle_policy, settings, answer, field):
    """A processor answers the objection's `unsubscribe` with counts that are negative, past
    PostgreSQL's integers, words, booleans, fractions, more unsubscribed than matched, or no
    object at all. Before, -3 was recorded as done, "-3 found"; 2**40 failed the task with
    the database's error; "lots" with Python's. Now the task needs attention with a message that
    names the field, and a plain answer is still taken."""
    _, opendsr = _opendsr(processor, tmp_path, lifecycle_policy, pool, settings)
    try:
        processor.unsubscribed = answer
        with pytest.raises(PermanentConnectorError) as refused:
            await opendsr.object(subject("ada@example.com"), "direct_marketing")
        processor.unsubscribed = {"matched": 1, "unsubscribed": 1}
        taken = await opendsr.object(subject("ada@example.com"), "direct_marketing")
    finally:
        await opendsr.close()
    assert str(refused.value).startswith(f"system {PROCESSOR}: the processor's answer to unsubscribe: {field} ")
    assert (taken.status, taken.found, taken.changed) == ("done", 1, 1)


async def test_dataset_and_column_names_a_processor_chose_read_plainly_in_the_package(
        pool, processor, tmp_path, lifecycle_policy, settings):
    """A processor's access results name datasets and columns with a right-to-left override
    ("\\u202egpj.exe" reads "exe.jpg"), a line break, markup and 5,000 characters, and two
    datasets whose names give one file name. Before, the override stood in the archive's file
    names and in the summary, the long names whole in the summary, and the two datasets were
    two zip entries of one name, one of which the subject unpacking it lost. Now the names read
    as written, without the marks, short; the two datasets are one file with every record."""
    policy, opendsr = _opendsr(processor, tmp_path, lifecycle_policy, pool, settings)
    long_name = "n" * 5000
    processor.results = {"datasets": [
        {"name": f"{OVERRIDE}gpj.exe", "records": [{f"{OVERRIDE}emanresu": "ada", "plain": 1}]},
        {"name": f"line\nbreak {SCRIPT}", "records": [{"x": 1}]},
        {"name": long_name, "records": [{long_name: 2}]},
        {"name": "a/b", "records": [{"n": 1}]},
        {"name": "a:b", "records": [{"n": 2}]},
    ]}
    try:
        records = await collect(opendsr, subject("ada@example.com"))
    finally:
        await opendsr.close()
    spools: dict = {}
    for record in records:
        spool_for(spools, (PROCESSOR, record.dataset, record.category)).add(record.fields, record.origin_of)
    summary = render_summary(policy.policy, spools, request_id=str(uuid.uuid4()), kind="access",
                             generated_on="2026-12-05", regime="gdpr", country="BE")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, spool in sorted(spools.items()):
            spool.write_into(archive, *part_files(*key))
            spool.close()
    names = zipfile.ZipFile(buffer).namelist()

    assert len(names) == len(set(names)) == 8  # four datasets, a JSON and a CSV file each
    assert all(name.isprintable() for name in names), names
    assert f"{PROCESSOR}/marketing/gpj.exe.json" in names
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", summary)).split())
    assert OVERRIDE not in summary and SCRIPT not in summary
    assert "(gpj.exe)" in text and "Observed from your use of our Website and Service: emanresu, plain" in text
    assert f"(line break {SCRIPT})" in text
    assert long_name not in summary and f"({'n' * 99}\u2026)" in text
    merged = next(s for key, s in spools.items() if key[1] == "a/b")
    assert merged.count == 2


@pytest.mark.parametrize("records", [5, "ada@example.com", {"email": "ada@example.com"},
                                     [{"email": "ada@example.com"}, "a line", 7]])
async def test_results_that_are_no_records_hold_the_package_back_naming_the_dataset(
        pool, processor, tmp_path, lifecycle_policy, settings, records):
    """A processor's results give a dataset's records as a number, a string, one object, or a
    list with things that are no records in it. Before, a number failed every attempt of the
    package with a TypeError, and the rest were skipped without a word: the subject's package
    said it held all the processor had. Now the system cannot be read, naming the dataset: the
    package waits and staff are told (activities/packages.py `_needs_attention`)."""
    _, opendsr = _opendsr(processor, tmp_path, lifecycle_policy, pool, settings)
    processor.results = {"datasets": [{"name": "contacts", "records": [{"email": "ada@example.com"}]},
                                      {"name": "newsletters", "records": records}]}
    try:
        with pytest.raises(PermanentConnectorError) as refused:
            await collect(opendsr, subject("ada@example.com"))
    finally:
        await opendsr.close()
    assert "'newsletters'" in str(refused.value) and "not a list of records" in str(refused.value)


async def test_a_retry_after_past_a_day_or_in_other_digits_is_not_taken_at_its_word(tmp_path, pool, monkeypatch):
    """A SaaS API answers 429 with a Retry-After of ten years, of 400 digits, or of "²" (a
    digit to str.isdigit, not to float). Before, the task waited ten years, failed every attempt
    with an OverflowError, or failed for good with a ValueError. Now a wait is at most a day
    (a quota's day comes back within one), and what is not a number of seconds is not one: the
    request is retried after the usual backoff."""
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        stripe = connector(loaded, "billing_stripe", pool)
        try:
            delays = []
            for asked in ("315360000", "9" * 400):
                app.state.standin.inject(429, retry_after=asked, path="/v1/customers")
                with pytest.raises(ApplicationError) as raised:
                    await collect(stripe, subject("ada@example.com"))
                assert raised.value.next_retry_delay is not None
                delays.append(raised.value.next_retry_delay.total_seconds())
            app.state.standin.inject(429, retry_after="\u00b2", path="/v1/customers")
            await collect(stripe, subject("ada@example.com"))  # retried after the backoff: taken
        finally:
            await stripe.close()
    assert delays == [86400, 86400]
