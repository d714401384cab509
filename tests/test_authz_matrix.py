"""Authorisation matrix: every staff endpoint x {no credentials, agent, compliance, admin}.

One row per endpoint. Calls name resources that do not exist (or send a body that is checked only
after authorisation), so a permitted call answers 404/422/200 without changing anything; 401 is
no credentials, 403 a role too low. Pages for a browser (the console, the evidence pack's HTML)
answer 303 (to the sign-in page) instead of 401.
To add an endpoint, add its row: `test_every_api_endpoint_has_a_row` fails until you do.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from tests.support import api_client, staff_headers

NO_REQUEST = "00000000-0000-4000-8000-000000000000"
NO_HOLD = "00000000-0000-4000-8000-000000000001"
NO_TOKEN = "00000000-0000-4000-8000-000000000002"
NO_MESSAGE = "00000000-0000-4000-8000-000000000003"
R = f"/v1/requests/{NO_REQUEST}"
C = f"/console/requests/{NO_REQUEST}"
I = f"/console/inbox/{NO_MESSAGE}"
EMPTY_PAYLOADS = {"payloads": []}
REASON = {"reason": "Covers many systems and years of records"}


class Row(NamedTuple):
    method: str
    path: str
    body: Any
    none: int
    agent: int
    compliance: int
    admin: int


MATRIX = [
    #   method    path                                  body                                    none agent compl admin
    Row("GET",    "/v1/requests",                       None,                                   401, 200, 200, 200),
    Row("POST",   "/v1/requests",                       {},                                     401, 422, 422, 422),
    Row("GET",    R,                                    None,                                   401, 404, 404, 404),
    # Cancelling refuses the request (compliance's, as deny); recording the subject's own
    # withdrawal is any member of staff's. The body is read before the request is looked up.
    Row("POST",   f"{R}/cancel",                        {"reason": "No longer needed"},         401, 403, 404, 404),
    Row("POST",   f"{R}/cancel",                        {"reason": "Withdrawn by phone", "withdrawn_by_subject": True},
                                                                                                401, 404, 404, 404),
    Row("POST",   f"{R}/resend-verification",           None,                                   401, 404, 404, 404),
    Row("POST",   f"{R}/extend",                        REASON,                                 401, 403, 404, 404),
    Row("POST",   f"{R}/deny",                          {"reason_code": "excessive", "explanation": "Fourth identical request this month"},
                                                                                                401, 403, 404, 404),
    Row("POST",   f"{R}/approve",                       None,                                   401, 403, 404, 404),
    Row("GET",    f"{R}/package",                       None,                                   401, 403, 404, 404),
    Row("GET",    f"{R}/events",                        None,                                   401, 403, 404, 404),
    Row("GET",    f"{R}/evidence",                      None,                                   401, 403, 404, 404),
    Row("GET",    f"{R}/evidence.html",                 None,                                   303, 403, 404, 404),
    Row("POST",   f"{R}/retry-task",                    {"system": "crm"},                      401, 403, 404, 404),
    Row("POST",   f"{R}/retry-step",                    None,                                   401, 403, 404, 404),
    Row("POST",   f"{R}/skip-step",                     {"note": "sent by hand"},               401, 403, 404, 404),
    Row("POST",   f"{R}/resolve-task",                  {"system": "crm", "note": "Done by phone"},
                                                                                                401, 403, 404, 404),
    Row("POST",   f"{R}/decide-objection",              {"compelling_grounds": False, "explanation": "No overriding grounds"},
                                                                                                401, 403, 404, 404),
    Row("POST",   f"{R}/lift-restriction",              {"reason": "The court case was settled"},
                                                                                                401, 403, 404, 404),
    # Telling a UK complainant of progress (DPA 2018 s. 164A(5)(b)) is who decides complaints'.
    Row("POST",   f"{R}/tell-progress",                 {"note": "Our team is reviewing the records"},
                                                                                                401, 403, 404, 404),
    Row("GET",    "/v1/restrictions",                   None,                                   401, 403, 200, 200),
    Row("POST",   "/v1/suppressions/check",             {"emails": ["nobody@example.com"]},     401, 200, 200, 200),
    Row("POST",   "/v1/suppressions/lift",              {"email": "nobody@example.com", "consent": "Subscribed again on the form"},
                                                                                                401, 403, 404, 404),
    Row("GET",    "/v1/legal-holds",                    None,                                   401, 403, 200, 200),
    Row("POST",   "/v1/legal-holds",                    {},                                     401, 403, 422, 422),
    Row("GET",    f"/v1/legal-holds/{NO_HOLD}",         None,                                   401, 403, 404, 404),
    Row("DELETE", f"/v1/legal-holds/{NO_HOLD}",         REASON,                                 401, 403, 404, 404),
    Row("GET",    "/v1/tokens",                         None,                                   401, 403, 403, 200),
    Row("POST",   "/v1/tokens",                         {},                                     401, 403, 403, 422),
    Row("DELETE", f"/v1/tokens/{NO_TOKEN}",             None,                                   401, 403, 403, 404),
    Row("POST",   "/codec/encode",                      EMPTY_PAYLOADS,                         401, 403, 200, 200),
    Row("POST",   "/codec/decode",                      EMPTY_PAYLOADS,                         401, 403, 200, 200),
    Row("GET",    "/metrics",                           None,                                   401, 403, 403, 200),
    Row("POST",   "/console/sign-out",                  None,                                   303, 303, 303, 303),
    Row("GET",    "/console/",                          None,                                   303, 200, 200, 200),
    Row("GET",    "/console/queue",                     None,                                   303, 200, 200, 200),
    Row("GET",    "/console/requests/new",              None,                                   303, 200, 200, 200),
    Row("POST",   "/console/requests",                  {},                                     303, 422, 422, 422),
    Row("GET",    C,                                    None,                                   303, 404, 404, 404),
    Row("GET",    f"{C}/live",                          None,                                   303, 404, 404, 404),
    Row("GET",    f"{C}/letters/final/0",               None,                                   303, 404, 404, 404),
    Row("POST",   f"{C}/cancel",                        None,                                   303, 404, 404, 404),
    Row("POST",   f"{C}/extend",                        None,                                   303, 403, 404, 404),
    Row("POST",   f"{C}/tell-progress",                 None,                                   303, 403, 404, 404),
    Row("GET",    "/console/dashboard",                 None,                                   303, 403, 200, 200),
    Row("PUT",    f"{R}/assignee",                      {"assignee": "me"},                     401, 404, 404, 404),
    Row("GET",    f"{R}/notes",                         None,                                   401, 404, 404, 404),
    Row("POST",   f"{R}/notes",                         {"note": "Called the subject"},         401, 404, 404, 404),
    Row("POST",   f"{C}/assignment",                    None,                                   303, 404, 404, 404),
    Row("POST",   f"{C}/notes",                         None,                                   303, 404, 404, 404),
    # An erasure a hold deferred names the hold: compliance's (api/staff_writes.py DEFERRED_ROLES).
    Row("GET",    f"{R}/deferred-erasures",             None,                                   401, 403, 404, 404),
    Row("POST",   f"{R}/deferred-erasures/surveys/retry", None,                                 401, 403, 404, 404),
    Row("POST",   f"{R}/deferred-erasures/surveys/settle", {"note": "Deleted by their DPO"},    401, 403, 404, 404),
    Row("POST",   f"{C}/deferred/surveys/retry",        None,                                   303, 403, 404, 404),
    Row("POST",   f"{C}/deferred/surveys/settle",       None,                                   303, 403, 404, 404),
    # Resuming a request whose workflow ended: compliance's (api/staff_writes.py RESUME_ROLE).
    Row("POST",   f"{R}/resume",                        {"reason": "The relay is fixed"},       401, 403, 404, 404),
    Row("POST",   f"{C}/resume",                        None,                                   303, 403, 404, 404),
    # Recording a subject's dispute of accuracy against a correction: compliance's (api/staff_writes.py DISPUTE_ROLE).
    Row("POST",   f"{R}/record-dispute",                {"statement": "My birth date is 12 March 1984"},
                                                                                                401, 403, 404, 404),
    Row("POST",   f"{C}/record-dispute",                None,                                   303, 403, 404, 404),
    # ... and that its recipients were told of it (hDF): compliance's too.
    Row("POST",   f"{R}/record-dispute-told",           {"recipients": ["communication_crm"], "note": "E-mailed their DPO today"},
                                                                                                401, 403, 404, 404),
    Row("POST",   f"{C}/record-dispute-told",           None,                                   303, 403, 404, 404),
    # A held lift the sweep handed to staff, recorded as carried out by hand (hEH): compliance's, as
    # resolving a task is (api/staff_writes.py LIFT_BY_HAND_ROLE); what is outstanding, anyone's.
    Row("GET",    f"{R}/lifts-by-hand",                 None,                                   401, 404, 404, 404),
    Row("POST",   f"{R}/record-lift-by-hand",           {"system": "email_marketing", "note": "Lifted by their DPO"},
                                                                                                401, 403, 404, 404),
    Row("POST",   f"{C}/record-lift-by-hand",           None,                                   303, 403, 404, 404),
    Row("POST",   "/console/views",                     None,                                   303, 303, 303, 303),
    Row("POST",   f"/console/views/{NO_TOKEN}/delete",  None,                                   303, 404, 404, 404),
    Row("GET",    "/console/inbox",                     None,                                   303, 200, 200, 200),
    # The direct-marketing suppression list (api/staff_writes.py SUPPRESSION_ROLES): an empty form
    # is refused (422) once the role may post it.
    Row("GET",    "/console/suppressions",              None,                                   303, 200, 200, 200),
    Row("POST",   "/console/suppressions/check",        None,                                   303, 422, 422, 422),
    Row("POST",   "/console/suppressions/lift",         None,                                   303, 403, 422, 422),
    # Legal-claims holds (api/console/holds.py): compliance's; an empty form is refused (422).
    Row("GET",    "/console/holds",                     None,                                   303, 403, 200, 200),
    Row("GET",    "/console/holds?released=eyJ4IjoxfQ", None,                                   303, 403, 200, 200),
    Row("POST",   "/console/holds",                     None,                                   303, 403, 422, 422),
    Row("POST",   f"/console/holds/{NO_HOLD}/release",  None,                                   303, 403, 404, 404),
    # Staff tokens (api/staff_writes.py TOKEN_ROLE): an empty form is refused (422) for an admin.
    Row("GET",    "/console/tokens",                    None,                                   303, 403, 403, 200),
    Row("POST",   "/console/tokens",                    None,                                   303, 403, 403, 422),
    Row("POST",   f"/console/tokens/{NO_TOKEN}/revoke", None,                                   303, 403, 403, 404),
    Row("GET",    f"{I}",                               None,                                   303, 404, 404, 404),
    Row("POST",   f"{I}/convert",                       None,                                   303, 404, 404, 404),
    Row("POST",   f"{I}/attach",                        None,                                   303, 404, 404, 404),
    Row("POST",   f"{I}/dismiss",                       None,                                   303, 404, 404, 404),
]

# Open to everyone by design: the subject's side, processor callbacks, health, the API's docs.
PUBLIC_PREFIXES = ("/v1/public/", "/v1/callbacks/", "/healthz")


@pytest.fixture(scope="module")
async def http(settings):
    # Every call stops before the workflow engine: no Temporal client.
    async with api_client(settings, None, "unused") as client:
        yield client


@pytest.fixture(scope="module")
async def credentials(pool) -> dict[str, dict[str, str]]:
    return {"none": {}, **{role: await staff_headers(pool, role) for role in ("agent", "compliance", "admin")}}


@pytest.mark.parametrize("who", ["none", "agent", "compliance", "admin"])
@pytest.mark.parametrize("row", MATRIX, ids=[f"{r.method} {r.path.replace(NO_REQUEST, '{id}')}"
                                              + (" withdrawal" if (r.body or {}).get("withdrawn_by_subject") else "")
                                              for r in MATRIX])
async def test_matrix(http, credentials, row: Row, who: str):
    response = await http.request(row.method, row.path, headers=credentials[who],
                                  **({"json": row.body} if row.body is not None else {}))
    assert response.status_code == getattr(row, who), response.text


def _template(path: str) -> str:
    for concrete, name in ((NO_REQUEST, "{request_id}"), (NO_HOLD, "{hold_id}"), (NO_TOKEN, "{token_id}"),
                           ("/deferred-erasures/surveys/", "/deferred-erasures/{system}/")):
        path = path.replace(concrete, name)
    return path


async def test_every_api_endpoint_has_a_row(http):
    schema = (await http.get("/openapi.json")).json()
    staff = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops
             if not path.startswith(PUBLIC_PREFIXES)}
    assert staff - {(r.method, _template(r.path)) for r in MATRIX} == set()


def test_every_console_page_has_a_row():
    # Every route the app serves under /console/, as test_hostile_forms.py walks them: a list of
    # the console's modules here forgot request_resume.py until it was read again.
    from fastapi.routing import iter_route_contexts

    from api.app import create_app
    from dsrflow.settings import Settings

    public = {"/console/sign-in"}
    routes = [route for route in iter_route_contexts(create_app(Settings()).routes)
              if route.path.startswith("/console") and route.path not in public]
    missing = [f"{sorted(route.methods)} {route.path}" for route in routes
               if not any(row.method in route.methods and route.path_regex.match(row.path) for row in MATRIX)]
    assert missing == []
