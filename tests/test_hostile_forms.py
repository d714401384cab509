"""Hostile input the other attack tests do not reach (docs/security.md, "Untrusted input and processors"):

1. Processor B, signing with its own valid key, names processor A's task (its subject_request_id),
   as itself (`?system=B`) or as A (`?system=A`): refused, and nothing happens: no audit event, no
   replay record, the task's row as it was, its workflow never signalled (it still waits).
2. The portal's and the console's forms, left out of the OpenAPI document (include_in_schema=False)
   and so never fuzzed by tests/test_api_fuzz.py. Every POST form route under /portal and /console,
   found from the app's routes, gets hostile bodies and ids: never a 5xx; a refusal (4xx, or the
   page's redirect with its error) whose 422 names a field; nothing stored.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import secrets
import uuid
from types import SimpleNamespace

import pytest
from fastapi.routing import iter_route_contexts
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from api.app import create_app
from api.console.suppressions import CONSENT_FIELD
from api.staff_actions import STAFF_ACTIONS
from dsrflow.settings import Settings
from schemas.workflow import task_workflow_id
from tests.conftest import database_pool
from tests.support import CSRF_FIELD, PROBLEM, api_client, console_sign_in, live_client, unique_email, wait_for_letter
from tests.test_console_pages import open_request
from tests.test_mailbox_console import filed, raw_mail
from tests.untrusted_support import (
    PROCESSOR,
    api_over_http,
    fake_processor,
    pending_erasure,
    processor_policy,
    rfc3339,
    served,
)
from tests.yaml_files import dump_yaml, read_yaml
from workers.dsr_worker import build_worker

# -- 1. a processor answering for another's task ---------------------------------------------------

OTHER = "other_proc"  # processor B; tests/untrusted_support.py's PROCESSOR is A


@pytest.fixture(scope="module")
async def processors(settings, postgres, dev_server, lifecycle_policy, tmp_path_factory):
    """Two OpenDSR processors with keys of their own in the policy, a worker, the API over HTTP,
    on a database of their own: A's callbacks must not reach the session's database, where
    tests/test_untrusted_processors.py counts every event by A's name."""
    a, b = fake_processor(), fake_processor()
    async with served(a.app()) as a.url, served(b.app()) as b.url, \
            database_pool(postgres, "cross") as (database_url, pool):
        path = processor_policy(tmp_path_factory.mktemp("cross"), lifecycle_policy, {"base_url": f"{a.url}/opendsr"})
        content = read_yaml(path)
        content["systems"][OTHER] = {"label": "Another processor", "connector": "opendsr",
                                     "config": {"origin": "observed", "base_url": f"{b.url}/opendsr"}}
        path.write_text(dump_yaml(content, sort_keys=False))
        queue = f"cross-{uuid.uuid4().hex[:8]}"
        ours = settings.model_copy(update={"policy_path": path, "task_queue": queue, "database_url": database_url})
        async with build_worker(dev_server.client, ours, pool, task_queue=queue), \
                api_over_http(ours, dev_server.client) as url, live_client(base_url=url) as http:
            # A's job waits 5 minutes before its first poll (the fake expects to finish in 2099):
            # only a callback could move it during the test.
            request_id, external_id = await pending_erasure(http, pool)
            yield SimpleNamespace(http=http, a=a, b=b, request_id=request_id, external_id=external_id, pool=pool)


async def _heard(dev_server, pool, request_id: str) -> tuple[dict, int, int, WorkflowExecutionStatus | None]:
    """What a callback for A's task of the request would change, once the task waits for its
    processor (its poll timer started; its row is written by then): the task's row, the callbacks
    audited for the request, the signals its workflow received, and whether it still runs."""
    action, attempt = await pool.fetchrow("SELECT action, attempt FROM system_tasks WHERE request_id = $1 "
                                          "AND system = $2", uuid.UUID(request_id), PROCESSOR)
    handle = dev_server.client.get_workflow_handle(task_workflow_id(request_id, PROCESSOR, action, attempt))
    for _ in range(300):
        events = [e.event_type for e in (await handle.fetch_history()).events]
        if EventType.EVENT_TYPE_TIMER_STARTED in events:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"{handle.id} never waited for its processor")
    task = dict(await pool.fetchrow("SELECT * FROM system_tasks WHERE request_id = $1 AND system = $2",
                                    uuid.UUID(request_id), PROCESSOR))
    audited = await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 "
                                  "AND event_type = 'processor.callback'", uuid.UUID(request_id))
    signals = events.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    return task, audited, signals, (await handle.describe()).status


def _status(external_id: str, status: str = "completed") -> dict:
    return {"subject_request_id": external_id, "request_status": status, "results_count": 0,
            "status_changed_time": rfc3339(dt.datetime.now(dt.UTC))}


@pytest.mark.parametrize(("query", "expected"), [
    (f"system={OTHER}", {404}),  # as itself: the lookup is limited to B's own tasks
    (f"system={PROCESSOR}", {403}),  # as A: B's signature does not verify against A's certificate
    # Both named: whichever one the route takes, the signature and the lookup must agree on it.
    (f"system={OTHER}&system={PROCESSOR}", {403, 404}),
    (f"system={PROCESSOR}&system={OTHER}", {403, 404}),
], ids=["as-itself", "as-the-owner", "both-owner-last", "both-owner-first"])
async def test_a_processor_cannot_answer_another_processors_task(processors, dev_server, query, expected):
    pool = processors.pool
    before = await _heard(dev_server, pool, processors.request_id)
    body, headers = processors.b.signed(_status(processors.external_id))
    answer = await processors.http.post(f"/v1/callbacks/opendsr?{query}", content=body, headers=headers)
    assert answer.status_code in expected, answer.text
    assert await _heard(dev_server, pool, processors.request_id) == before
    assert before[1:] == (0, 0, WorkflowExecutionStatus.RUNNING)  # never told anything: it still waits
    assert not await pool.fetchval("SELECT count(*) FROM opendsr_callbacks_seen WHERE body_sha256 = $1",
                                   hashlib.sha256(body).digest())


async def test_the_owning_processor_is_heard(processors, dev_server):
    """The probe above can fail: A's own signed callback for its task is audited and signalled (a
    completion: one in progress tells the task nothing, and is not signalled)."""
    pool = processors.pool
    request_id, external_id = await pending_erasure(processors.http, pool)
    before = await _heard(dev_server, pool, request_id)
    body, headers = processors.a.signed(_status(external_id))
    answer = await processors.http.post(f"/v1/callbacks/opendsr?system={PROCESSOR}", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    assert before[1:3] == (0, 0) and (await _heard(dev_server, pool, request_id))[1:3] == (1, 1)


# -- 2. the portal's and the console's forms -------------------------------------------------------

# Each form route and the fields its handler reads (handlers read `request.form()` themselves: the
# routes declare none). A new form route fails test_every_form_route_is_attacked until it is here.
_REQUEST_FORM = ("type", "email", "name", "country", "language", "correct_name", "other_corrections",
                 "restriction_grounds", "objection_scope", "appeal_of")
ACT = "/console/requests/{request_id}/{action}"
FIELDS: dict[str, tuple[str, ...]] = {
    "/portal/requests": (*_REQUEST_FORM, "submission"),
    "/portal/complaints": ("about", "email", "complaint_reasons", "language", "submission"),
    "/portal/requests/{request_id}/verify": ("code", "token"),
    "/portal/requests/{request_id}/resend": (),  # no fields: any body asks for a code (ids only)
    "/portal/packages/{token}": (),  # no fields: any body downloads (ids only)
    "/console/sign-in": ("token", "next"),
    "/console/sign-out": (),
    "/console/requests": (*_REQUEST_FORM, "customer_id", "regime", "channel", "received_at",
                          "identity_attested", "submission", "complaint_reasons"),
    "/console/requests/{request_id}/assignment": ("assignee",),
    "/console/requests/{request_id}/notes": ("note", "submission"),
    "/console/requests/{request_id}/deferred/{system}/retry": ("attempt", "state"),
    "/console/requests/{request_id}/deferred/{system}/settle": ("note", "attempt", "state"),
    "/console/requests/{request_id}/resume": ("reason",),
    "/console/requests/{request_id}/record-dispute": ("statement", "submission"),
    "/console/requests/{request_id}/record-dispute-told": ("recipients", "none_to_tell", "note", "submission"),
    "/console/requests/{request_id}/record-lift-by-hand": ("system", "note"),
    "/console/views": ("name", "query"),
    "/console/views/{view_id}/delete": (),
    "/console/suppressions/check": ("addresses",),
    "/console/holds": ("email", "customer_id", "systems", "categories", "reason", "review_date", "submission"),
    "/console/holds/{hold_id}/release": ("reason",),
    "/console/tokens": ("role", "label", "expires_in_days"),
    "/console/tokens/{token_id}/revoke": ("descendants",),  # "yes": the tokens it created too
    # The consent's box is named after the address whose Lift button was pressed (api/console/suppressions.py).
    "/console/suppressions/lift": ("addresses", "email", f"{CONSENT_FIELD}x@example.com"),
    ACT: (),  # one route per action of api/staff_actions.py, each with its body's fields
    "/console/inbox/{message_id}/convert": (*_REQUEST_FORM, "customer_id", "regime", "complaint_reasons"),
    "/console/inbox/{message_id}/attach": ("request_id",),
    "/console/inbox/{message_id}/dismiss": ("reason",),
}
FORM_ROUTES = sorted(r.path for r in iter_route_contexts(create_app(Settings()).routes)
                     if "POST" in (r.methods or ()) and r.path.startswith(("/portal/", "/console/")))
IDS_ONLY = {"/portal/requests/{request_id}/resend", "/portal/packages/{token}"}
# An empty assignee is the form's own "nobody" (api/console/team.py): a body without one unassigns,
# which for a request nobody has changes nothing.
EMPTY_IS_A_CHOICE = {"/console/requests/{request_id}/assignment"}
# The anonymous form again, valid but for one field of an access request: a refusal there cannot
# hide behind another field's.
VALID_ACCESS = {"type": "access", "email": "hostile@example.com", "name": "Ada", "country": "BE", "language": "en"}

CONTROL = "a\x00b\x1b[2J\r\nBcc: x@evil.example\u2028\x7f\x85"
NOT_UTF8 = b"\xff\xfe%FF%C0%AF"  # raw and percent-encoded bytes that no UTF-8 decoder accepts
# Bodies the whole form gets; a 100 KB string goes into one field at a time (a body of several
# passes the 256 KiB cap and is refused before any handler reads it: test_untrusted_input.py).
BODIES = ("missing", "file-for-text", "control-chars", "non-utf8", "json", "broken-multipart")
BAD_IDS = {"unknown-id": None, "malformed-id": "not-an-id", "nul-id": "%00"}  # None: a well-formed one
COUNTED = ("dsr_requests", "audit_events", "mail_outbox", "sent_letters", "request_notes", "saved_views",
           "request_assignments", "staff_sessions")
COUNTS = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t}) AS {t}" for t in COUNTED) + \
         ", (SELECT count(*) FROM mailbox_messages WHERE status <> 'new') AS mail_decided"

def _fields(route: str, action: str | None) -> tuple[str, ...]:
    body = STAFF_ACTIONS[action].body if action else None
    return tuple(body.model_fields) if body else FIELDS[route]


def _cases():
    for route in FORM_ROUTES:
        for action in (sorted(STAFF_ACTIONS) if route == ACT else [None]):
            name = route.replace("{action}", action) if action else route
            if route not in IDS_ONLY:
                for body in BODIES:
                    yield pytest.param(route, action, body, None, None, id=f"{name} {body}")
                for field in _fields(route, action):
                    yield pytest.param(route, action, "100kb", field, None, id=f"{name} 100kb {field}")
            if route == "/portal/requests":
                for body in ("file-for-text", "non-utf8"):
                    for field in ("type", "email", "name", "country", "language"):
                        yield pytest.param(route, None, body, field, None, id=f"{name} {body} {field}+valid")
            if "{" in route.replace("{action}", "") and action in (None, "cancel"):
                param = re.search(r"{(\w+)}", route).group(1)
                for bad, value in BAD_IDS.items():
                    yield pytest.param(route, action, "missing", None, (param, value), id=f"{name} {bad}")
    for bad in ("no-such-action", "%00"):
        yield pytest.param(ACT, "cancel", "missing", None, ("action", bad), id=f"{ACT} {bad}")


def test_every_form_route_is_attacked():
    assert FORM_ROUTES and set(FORM_ROUTES) == set(FIELDS)


@pytest.fixture(scope="module")
async def forms(postgres, settings, dev_server, mail_sink):
    """The app (a staff client signed in as admin, a visitor's) on a database of its own, whose
    whole tables are counted, with a request waiting for its subject to aim at."""
    async with database_pool(postgres, "hostile") as (url, pool):
        queue = f"hostile-{uuid.uuid4().hex[:8]}"
        ours = settings.model_copy(update={"database_url": url, "task_queue": queue})
        async with build_worker(dev_server.client, ours, pool, task_queue=queue), \
                api_client(ours, dev_server.client, queue) as staff, api_client(ours, dev_server.client, queue) as anon:
            request_id = await open_request(staff, pool)
            await wait_for_letter(mail_sink, request_id, "verification")  # delivered: the request is still now
            csrf = await console_sign_in(staff, pool, "admin")
            yield SimpleNamespace(settings=ours, pool=pool, staff=staff, anon=anon, csrf=csrf, request_id=request_id)


def _hostile(body: str, fields: tuple[str, ...], field: str | None, csrf: str | None) -> dict:
    """httpx's arguments for one hostile body: in every field, or in `field` alone (the rest valid
    on the portal's form). The CSRF token rides in a header, so that the route's own reading of
    the body is reached, except in the non-UTF-8 form, which the session check must read first."""
    headers = {"X-CSRF-Token": csrf} if csrf and body != "non-utf8" else {}
    base = {k: v for k, v in VALID_ACCESS.items() if k != field} if field and body != "100kb" else {}
    targets = (field,) if field else fields
    plain = {"missing": {}, "100kb": {field: "x" * 100_000}, "control-chars": {f: CONTROL for f in targets}}
    if body in plain:
        return {"headers": headers, "data": plain[body]}
    if body == "file-for-text":  # a file where the form has text (or a file alone, for no fields)
        return {"headers": headers, "data": base,
                "files": [(f, ("x.bin", b"\x00\xff", "application/octet-stream")) for f in targets or ("upload",)]}
    if body == "non-utf8":
        pairs = [f"{k}={v}".encode() for k, v in base.items()] + [f"{f}=".encode() + NOT_UTF8 for f in targets]
        pairs += [b"csrf_token=" + csrf.encode()] if csrf else []
        return {"content": b"&".join(pairs) or NOT_UTF8,
                "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
    if body == "json":  # the wrong content type, and the wrong types in it
        return {"headers": headers, "json": {f: [None, 1, {"$ne": ""}] for f in targets}}
    assert body == "broken-multipart"
    return {"content": b"--elsewhere\r\nContent-Disposition: form-data\r\n\r\n\xff",
            "headers": {**headers, "Content-Type": "multipart/form-data; boundary=nowhere"}}


def _named(response, fields: tuple[str, ...]) -> set[str]:
    """The fields a refusal names: a problem's `errors`; on a page, the `{field}-error` paragraphs
    of a form, or the fields an alert's text names (the request page's "reason: must not ...")."""
    if response.headers.get("content-type", "").startswith(PROBLEM):
        return {str(e["field"]).rsplit(".", 1)[-1] for e in response.json().get("errors", [])} & set(fields)
    named = set()
    for attributes, message in re.findall(r"<p ([^>]*)>(.*?)</p>", response.text, re.S):
        if 'role="alert"' in attributes or '-error"' in attributes:
            named |= set(re.findall(r'id="([\w-]+)-error"', attributes))
            named |= {f for f in fields if re.search(rf"\b{f}\b", message)}
    return named & set(fields)


async def _settled(pool) -> dict:
    """The counts once what an accepted body set off (a letter, its audit events) has finished, so
    that the failure shows all of it and the next case starts from a still database. Only ever
    called once something was stored: it polls until two readings agree."""
    counts = dict(await pool.fetchrow(COUNTS))
    for _ in range(100):
        await asyncio.sleep(0.3)
        counts, previous = dict(await pool.fetchrow(COUNTS)), counts
        if counts == previous:
            break
    return counts


@pytest.mark.parametrize(("route", "action", "body", "field", "bad_id"), list(_cases()))
async def test_a_hostile_form_is_refused_and_stores_nothing(forms, request, route, action, body, field, bad_id):
    fields = _fields(route, action)
    ids = {"request_id": forms.request_id, "view_id": str(uuid.uuid4()), "token_id": str(uuid.uuid4()),
           "hold_id": str(uuid.uuid4()),
           "token": secrets.token_hex(32),
           "action": action, "system": "email_marketing"}
    if "{message_id}" in route:  # a message of its own: a decision on it is final
        ids["message_id"] = await filed(forms.settings, forms.pool, raw_mail(unique_email("inbox"), "Erase me."))
    if bad_id:  # one id of the path replaced: by a well-formed one nobody has, or a malformed one
        name, value = bad_id
        ids[name] = value or (secrets.token_hex(32) if name == "token" else str(uuid.uuid4()))
    path = route.format(**ids)
    visitor = route.startswith("/portal/") or route == "/console/sign-in"
    client = forms.anon if visitor else forms.staff
    csrf = None if visitor or not fields and not bad_id else forms.csrf  # no fields: nothing but the CSRF check
    if route == "/console/sign-in":  # the sign-in form's token, bound to the nonce cookie it sets
        csrf = CSRF_FIELD.search((await client.get("/console/sign-in")).text).group(1)
    before = dict(await forms.pool.fetchrow(COUNTS))
    response = await client.post(path, **_hostile(body, fields, field, csrf))
    case = request.node.callspec.id
    shown = f"POST {path} [{case}] -> {response.status_code} {response.headers} {response.text[:600]}"
    assert response.status_code < 500, shown
    after = dict(await forms.pool.fetchrow(COUNTS))
    after = await _settled(forms.pool) if after != before else after
    assert after == before, f"stored {({k: (before[k], after[k]) for k in after if after[k] != before[k]})}; {shown}"
    if response.is_redirect:  # the team's forms come back to their page with the refusal
        assert "error=" in response.headers["location"] or route in EMPTY_IS_A_CHOICE, shown
    else:
        assert 400 <= response.status_code < 500, shown
    if response.status_code == 422 and fields:
        assert _named(response, fields), shown
