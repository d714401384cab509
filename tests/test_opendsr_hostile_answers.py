"""An OpenDSR processor (or whoever answers in its place: a proxy's error page, a forged processor,
a man in the middle on a misconfigured link) answering what is not the document the call asks
for: HTML, no JSON, JSON nested 100,000 deep, a list where an object goes, an answer without its
job's id, results without datasets. Before, each failed with what httpx's `response.json()` and
the reading after it raised, naming nothing (RecursionError, JSONDecodeError, AttributeError), a
different-id error for an answer with no id, or for results that were a list, nothing at all:
the subject's package said the processor held nothing. Now each is OpenDsrMalformed, naming the
system, the call and what was wrong, retried as a failing processor is, and read once the
processor answers properly again; what reaches staff when the retries run out is that message.
Against a stand-in processor over loopback (the real connector, its bounded client)."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from activities.connectors.base import PermanentConnectorError
from activities.connectors.opendsr import subject_request_id
from activities.connectors.opendsr_answers import OpenDsrMalformed, OpenDsrUnavailable
from activities.connectors.opendsr_signature import (
    SIGNATURE_HEADER,
    ProcessorCertificateError,
    ProcessorCertificates,
    sign,
)
from activities.errors import is_deterministic
from policy.model import load_policy
from tests.fanout_stack import served
from tests.processor_identity import processor_identity
from tests.saas_support import collect, connector, subject
from tests.support import unique_email
from tests.untrusted_support import PROCESSOR, FakeProcessor, processor_policy, staff_read_the_processors_fault

DEEP = b"[" * 100_000 + b"]" * 100_000
HTML = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass
class HostileProcessor(FakeProcessor):
    """An OpenDSR processor whose every route answers properly (erasure jobs completed, results
    with one dataset, status answers signed) unless `hostile` names the route: then it answers
    that body with that media type (None: no Content-Type at all)."""

    hostile: dict[str, tuple[bytes, str | None]] = field(default_factory=dict)
    encoding: str | None = None  # the Content-Encoding a hostile answer says it is in
    redirect: str | None = None  # where a hostile answer sends the caller (a 307 to it)

    def app(self) -> Starlette:
        def answer(route: str, proper: Any, status_code: int = 200) -> Response:
            if route in self.hostile:
                body, kind = self.hostile[route]
                response = Response(body, status_code=status_code)
                if kind is None:
                    del response.headers["content-type"]
                else:
                    response.headers["content-type"] = kind
                if self.encoding is not None:
                    response.headers["content-encoding"] = self.encoding
                if self.redirect is not None:
                    response.status_code, response.headers["location"] = 307, self.redirect
                return response
            return JSONResponse(proper, status_code=status_code)

        async def discovery(request: Request) -> Response:
            return answer("discovery", self.discovery_document(unsubscribe=True))

        async def certificate(request: Request) -> Response:
            return Response(self.cert_pem, media_type="application/x-pem-file")

        async def submit(request: Request) -> Response:
            job = (await request.json())["subject_request_id"]
            return answer("submit", {"subject_request_id": job, "expected_completion_time": "2099-01-01T00:00:00Z"},
                          201)

        async def status(request: Request) -> Response:
            response = answer("status", {"subject_request_id": request.path_params["rid"],
                                         "request_status": "completed", "results_count": 1,
                                         "results_url": f"{self.url}/opendsr/results/1"})
            response.headers[SIGNATURE_HEADER] = sign(bytes(response.body), self.key_pem)  # over what is sent
            return response

        async def results(request: Request) -> Response:
            return answer("results", {"datasets": [{"name": "contacts", "records": [{"email": "ada@example.com"}]}]})

        async def unsubscribe(request: Request) -> Response:
            return answer("unsubscribe", {"matched": 1, "unsubscribed": 1})

        return Starlette(routes=[
            Route("/opendsr/discovery", discovery), Route("/opendsr/cert.pem", certificate),
            Route("/opendsr/requests", submit, methods=["POST"]), Route("/opendsr/requests/{rid}", status),
            Route("/opendsr/results/{rest:path}", results), Route("/opendsr/unsubscribe", unsubscribe,
                                                                  methods=["POST"]),
        ])


@pytest.fixture(scope="module")
def identity() -> tuple[bytes, bytes]:
    return processor_identity()


@pytest.fixture
async def processor(identity):
    fake = HostileProcessor(*identity)
    async with served(fake.app()) as url:
        fake.url = url
        yield fake


def _opendsr(processor: HostileProcessor, tmp_path, lifecycle_policy, pool, settings, **config: Any):
    policy = load_policy(processor_policy(tmp_path, lifecycle_policy, {
        "base_url": f"{processor.url}/opendsr", "poll_interval_seconds": 0.05, **config}))
    return connector(policy, PROCESSOR, pool, settings)


async def _erase(opendsr, who):
    return await opendsr.erase(who)


async def _status(opendsr, who):
    return await opendsr.status(who, subject_request_id(who.request_id, PROCESSOR, "erasure"))


async def _access(opendsr, who):
    return await collect(opendsr, who)


async def _object(opendsr, who):
    return await opendsr.object(who, "direct_marketing")


ATTACKS = [
    # (route answering it, its body, its media type, what the connector is asked, the call, what was wrong)
    ("discovery", HTML, "text/html", _erase, "discovery (GET /opendsr/discovery)", "is HTML, not JSON"),
    ("discovery", DEEP, "application/json", _erase, "discovery (GET /opendsr/discovery)",
     "is JSON nested deeper than 32 levels"),
    ("discovery", b'[{"api_version": "2.0"}]', "application/json", _erase, "discovery (GET /opendsr/discovery)",
     "is a list where a JSON object was expected"),
    ("submit", b"{}", "application/json", _erase, "a new request (POST /opendsr/requests)",
     "has no subject_request_id"),
    ("submit", b"Accepted", "text/plain", _erase, "a new request (POST /opendsr/requests)",
     "is text/plain, not JSON"),
    ("submit", b"", None, _erase, "a new request (POST /opendsr/requests)",
     "is empty where a JSON object was expected"),
    ("status", DEEP, "application/json", _status, "a status request (GET /opendsr/requests/{job})",
     "is JSON nested deeper than 32 levels"),
    ("status", b'"completed"', "application/json", _status, "a status request (GET /opendsr/requests/{job})",
     "is text where a JSON object was expected"),
    ("status", b'{"request_status": "completed"}', "application/json", _status,
     "a status request (GET /opendsr/requests/{job})", "has no subject_request_id"),
    ("results", b'[{"email": "ada@example.com"}]', "application/json", _access,
     "the results request (GET /opendsr/results/1)", "is a list where a JSON object was expected"),
    ("results", b'{"error": "expired"}', "application/json", _access,
     "the results request (GET /opendsr/results/1)", "has no datasets"),
    ("results", b'{"datasets": ' + DEEP + b"}", "application/json", _access,
     "the results request (GET /opendsr/results/1)", "is JSON nested deeper than 32 levels"),
    ("unsubscribe", DEEP, "application/json", _object, "unsubscribe (POST /opendsr/unsubscribe)",
     "is JSON nested deeper than 32 levels"),
    ("unsubscribe", HTML, "text/html; charset=utf-8", _object, "unsubscribe (POST /opendsr/unsubscribe)",
     "is HTML, not JSON"),
]


@pytest.mark.parametrize(("route", "body", "kind", "ask", "call", "wrong"), ATTACKS,
                         ids=[f"{a[0]}-{a[5].split(',')[0]}" for a in ATTACKS])
async def test_a_malformed_answer_is_refused_naming_system_call_and_fault_and_retried(
        pool, settings, tmp_path, lifecycle_policy, processor, route, body, kind, ask, call, wrong):
    opendsr = _opendsr(processor, tmp_path, lifecycle_policy, pool, settings, verify_signatures=False)
    who = subject(unique_email("hostile"))
    processor.hostile[route] = (body, kind)
    try:
        with pytest.raises(OpenDsrMalformed) as refused:
            await ask(opendsr, who)
        # The processor answers properly again (its deploy is over): the same call goes through.
        processor.hostile.clear()
        recovered = await ask(opendsr, who)
    finally:
        await opendsr.close()
    job = subject_request_id(who.request_id, PROCESSOR, "erasure")
    assert str(refused.value) == f"system {PROCESSOR}: the processor's answer to {call.format(job=job)} {wrong}"
    # Retried (a processor's outage, not a mistake of ours), flagged for staff once retries run out.
    assert isinstance(refused.value, OpenDsrUnavailable) and not is_deterministic(refused.value)
    assert recovered


async def test_json_is_read_whatever_media_type_the_processor_labels_it_and_named_when_it_is_none(
        pool, settings, tmp_path, lifecycle_policy, processor):
    """OpenDSR's examples send application/json but the specification requires no media type, and
    leaves the results' transport open: a processor answering JSON as text/plain, or unlabelled,
    is read. What is no JSON is named by what it is labelled (before, a JSONDecodeError's
    "Expecting value: line 1 column 1 (char 0)")."""
    opendsr = _opendsr(processor, tmp_path, lifecycle_policy, pool, settings)
    who = subject(unique_email("plain"))
    try:
        # Discovery as text/plain, the new job unlabelled, its status as text/plain.
        processor.hostile.update({
            "discovery": (b'{"api_version": "2.0", "processor_certificate": "/opendsr/cert.pem", '
                          b'"supported_subject_request_types": ["access", "erasure"], '
                          b'"supported_identities": [{"identity_type": "email", "identity_format": "raw"}]}',
                          "text/plain"),
            "submit": (f'{{"subject_request_id": "{subject_request_id(who.request_id, PROCESSOR, "erasure")}"}}'
                       .encode(), None),
        })
        pending = await opendsr.erase(who)
        processor.hostile["status"] = (
            f'{{"subject_request_id": "{pending.external_id}", "request_status": "completed", '
            f'"results_count": 2}}'.encode(), "text/plain; charset=utf-8")
        done = await opendsr.status(who, str(pending.external_id))
        processor.hostile["status"] = (b"Service Unavailable", "text/plain")
        with pytest.raises(OpenDsrMalformed) as refused:
            await opendsr.status(who, str(pending.external_id))
    finally:
        await opendsr.close()
    assert pending.status == "pending" and (done.status, done.changed) == ("done", 2)
    assert str(refused.value).endswith(") is text/plain, not JSON")


async def test_request_types_offered_as_text_are_no_offer(pool, settings, tmp_path, lifecycle_policy, processor):
    """`supported_subject_request_types` is a list. One written as text was searched as text: "no
    erasure here" offered erasure, and the request went to a processor that said it takes none."""
    opendsr = _opendsr(processor, tmp_path, lifecycle_policy, pool, settings)
    who = subject(unique_email("substring"))
    processor.hostile["discovery"] = (
        b'{"api_version": "2.0", "processor_certificate": "/opendsr/cert.pem", '
        b'"supported_subject_request_types": "no erasure here", '
        b'"supported_identities": [{"identity_type": "email", "identity_format": "raw"}]}', "application/json")
    try:
        outcome = await opendsr.erase(who)
    finally:
        await opendsr.close()
    assert outcome.status == "needs_attention"
    assert "its discovery document does not offer erasure requests" in str(outcome.message)


async def test_a_hostile_discovery_document_fails_the_certificate_fetch_naming_it(
        pool, settings, tmp_path, lifecycle_policy, processor):
    """The certificate that checks a processor's signatures is found through its discovery
    document. One nested 100,000 deep was a RecursionError out of the certificate cache: the
    callback endpoint answered 500, a status poll failed naming nothing. Now no certificate can
    be had, named: the callback endpoint answers 503 as for any certificate it cannot get, and a
    signed status answer cannot be checked, retried as the processor being unavailable."""
    processor.hostile["discovery"] = (DEEP, "application/json")
    certificates = ProcessorCertificates()
    try:
        with pytest.raises(ProcessorCertificateError) as refused:
            await certificates.get(f"{processor.url}/opendsr/discovery")
    finally:
        await certificates.aclose()
    assert str(refused.value) == (f"discovery document {processor.url}/opendsr/discovery "
                                  "is JSON nested deeper than 32 levels")

    opendsr = _opendsr(processor, tmp_path, lifecycle_policy, pool, settings)  # signatures checked
    processor.hostile["discovery"] = (HTML, "text/html")
    try:
        with pytest.raises(OpenDsrUnavailable) as unchecked:
            await _status(opendsr, subject(unique_email("cert")))
    finally:
        await opendsr.close()
    assert str(unchecked.value) == (f"system {PROCESSOR}: cannot get the processor certificate: discovery "
                                    f"document {processor.url}/opendsr/discovery is HTML, not JSON")
    assert not is_deterministic(unchecked.value)


async def test_staff_read_which_processor_call_answered_what_once_retries_run_out(
        settings, pool, time_skipping, processor, tmp_path, lifecycle_policy, mail_sink, task_queue):
    """An erasure at a processor whose discovery answers a proxy's HTML error page, on every try.
    The erasure's task is retried (minutes of backoff, skipped here) and then needs staff: the
    request's page and the staff alert say which system, which call and what it answered. Before,
    the last try's error was a JSONDecodeError: "Expecting value: line 1 column 1 (char 0)"."""
    env = time_skipping
    processor.hostile["discovery"] = (HTML, "text/html")
    ours = settings.model_copy(update={"task_queue": task_queue, "policy_path": processor_policy(
        tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr"})})
    said = (f"system {PROCESSOR}: the processor's answer to discovery (GET /opendsr/discovery) "
            "is HTML, not JSON")
    await staff_read_the_processors_fault(env, ours, pool, mail_sink, said)


@pytest.mark.parametrize(("encoding", "said"), [
    (None, "its answer was longer than the connector reads"),
    ("gzip", "its answer was longer than the connector reads"),  # 33 KB sent
    ("br", "its answer was in a content encoding not asked for, or not in the one it named"),
])
async def test_an_answer_past_the_cap_is_named_as_such_for_staff(
        pool, settings, tmp_path, lifecycle_policy, processor, encoding, said):
    """Results of 33 MiB (past the 32 MiB a processor's answer may hold), sent as they are or
    gzipped to 33 KB, and an answer in an encoding never asked for: each is the processor
    failing, retried, and what staff read once retries run out names what was wrong. Before, they
    read the exception's class ("failed: AnswerTooLarge"), and the gzip answer was read whole."""
    body = b'{"datasets": [], "padding": "' + b" " * (33 * 1024 * 1024) + b'"}'
    if encoding == "gzip":
        body = gzip.compress(body, 6)
    elif encoding == "br":
        body = b'{"datasets": []}'
    opendsr = _opendsr(processor, tmp_path, lifecycle_policy, pool, settings, verify_signatures=False)
    processor.hostile["results"] = (body, "application/json")
    processor.encoding = encoding
    try:
        with pytest.raises(OpenDsrUnavailable) as refused:
            await _access(opendsr, subject(unique_email("large")))
    finally:
        await opendsr.close()
    assert str(refused.value) == f"system {PROCESSOR}: GET /opendsr/results/1 failed: {said}"


async def test_a_redirect_to_another_host_is_not_followed_with_the_processors_credentials(
        pool, settings, tmp_path, lifecycle_policy, processor):
    """A status poll answered 307 to another host (an internal API, the cloud's metadata address):
    not followed, so the `headers` the policy gives the processor's calls (its bearer token)
    never reach that host, and the task is flagged naming the status. A guard: httpx follows no
    redirect unless told to, and nothing tells it to."""
    elsewhere: list[str] = []

    async def collect(request: Request) -> Response:
        elsewhere.append(request.headers.get("authorization", ""))
        return JSONResponse({"subject_request_id": "x", "request_status": "completed"})

    async with served(Starlette(routes=[Route("/{rest:path}", collect)])) as other:
        processor.hostile["status"] = (b"", None)
        processor.redirect = f"{other}/latest/meta-data/iam"
        opendsr = _opendsr(processor, tmp_path, lifecycle_policy, pool, settings,
                           headers={"Authorization": "Bearer processor-secret"})
        who = subject(unique_email("redirected"))
        try:
            with pytest.raises(PermanentConnectorError, match=rf"system {PROCESSOR}: processor answered HTTP 307 "
                               r"to GET /opendsr/requests/"):
                await _status(opendsr, who)
        finally:
            await opendsr.close()
    assert elsewhere == []
