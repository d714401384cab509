"""An agent (or a compliance officer) tries to do more than their role allows, or to hurt the
subjects or the evidence, through the staff REST API and the console (docs/security.md, "Staff
against their own console"). The real app, PostgreSQL and Temporal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import date, timedelta

import pytest

from dsrflow.stores.staff_tokens import create_token
from tests.support import CSRF_FIELD, PROBLEM, console_sign_in, settings_env, staff_headers, unique_email

RECEIVED_STORED = "SELECT count(*) FROM dsr_requests WHERE subject_email = $1"


@pytest.mark.parametrize("received_at", [
    "0001-01-01T00:00:00+00:00",  # stored, then its first step failed for good (year 0 in Brussels)
    "0001-01-01T00:30:00+01:00",  # not storable at all: the API answered 500
    "1900-01-01T00:00:00+00:00",  # before any law a request can be under: overdue a century
])
async def test_a_receipt_before_any_law_applied_is_refused_by_name(http, pool, received_at):
    """An agent opens a request 'received' in year 1 or 1900, over REST and on the console: 422
    naming `received_at` and its floor, nothing stored. Before, the first answered 500, the
    second left a request whose workflow failed in its first step, the third was overdue at once
    with its extension out of reach."""
    email = unique_email("backdated")
    api = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "subject": {"email": email}, "identity_attested": True, "received_at": received_at})
    assert api.status_code == 422 and api.headers["content-type"].startswith(PROBLEM), api.text
    assert [e["field"] for e in api.json()["errors"]] == ["received_at"]
    assert "must not be before 2001-01-01" in api.text

    csrf = await console_sign_in(http, pool, "agent")
    page = await http.post("/console/requests", data={
        "csrf_token": csrf, "type": "access", "email": email, "identity_attested": "true",
        "received_at": received_at[:16]})
    assert page.status_code == 422
    assert 'id="received_at-error"' in page.text and "must not be before 2001-01-01" in page.text
    assert await pool.fetchval(RECEIVED_STORED, email) == 0


@pytest.mark.parametrize("label", ["Jane\nApproved by compliance", "Jane \u202eecnailpmoc", "Jane\u2066x\u2069"])
async def test_a_token_label_is_one_line_written_in_reading_order(http, pool, label):
    """A label with a line break or a mark that reorders text is refused, naming `label`: it
    names its holder on every event they leave (the timeline, notes), where such a label reads as
    another line or another name. Nothing is issued."""
    before = await pool.fetchval("SELECT count(*) FROM staff_tokens")
    made = await http.post("/v1/tokens", headers=await staff_headers(pool, "admin"),
                           json={"role": "agent", "label": label})
    assert made.status_code == 422, made.text
    assert [e["field"] for e in made.json()["errors"]] == ["label"]
    assert await pool.fetchval("SELECT count(*) FROM staff_tokens") == before + 1  # the admin's own


@pytest.mark.parametrize("label", ["Jane\nApproved by compliance", "Jane \u202eecnailpmoc"])
async def test_the_cli_refuses_the_labels_the_api_refuses(settings, pool, label):
    """`dsrflow token create --label` issued whatever it was given: the API's check was the API's
    own. The rule now lives with the store both use (dsrflow/stores/staff_tokens.py)."""
    before = await pool.fetchval("SELECT count(*) FROM staff_tokens")
    made = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "cli.main", "token", "create",
                                                    "--role", "agent", "--label", label],
                                   env={**os.environ, **settings_env(settings)}, capture_output=True, text=True,
                                   timeout=60)
    assert made.returncode == 2 and made.stdout == "", made.stderr
    assert "error: label must" in made.stderr
    assert await pool.fetchval("SELECT count(*) FROM staff_tokens") == before


async def test_what_staff_write_to_a_subject_is_refused_with_marks_that_reorder_it(http, pool):
    """A compliance officer's explanation goes into the denial letter as written: with a
    right-to-left override it reads otherwise than it was written (and reviewed). Refused, naming
    the field, over REST and from the console; nothing is sent."""
    compliance = await staff_headers(pool, "compliance")
    opened = await http.post("/v1/requests", headers=compliance, json={
        "type": "access", "subject": {"email": unique_email("reorder")}})
    assert opened.status_code == 201, opened.text
    rid = opened.json()["id"]
    explanation = "We refuse because \u202edetaeper si tseuqer ehT"
    api = await http.post(f"/v1/requests/{rid}/deny", headers=compliance,
                          json={"reason_code": "other", "explanation": explanation})
    assert api.status_code == 422, api.text
    assert [e["field"] for e in api.json()["errors"]] == ["explanation"]
    csrf = await console_sign_in(http, pool, "compliance")
    page = await http.post(f"/console/requests/{rid}/deny", data={
        "csrf_token": csrf, "reason_code": "other", "explanation": explanation})
    assert page.status_code == 422 and "marks that reorder text" in page.text
    events = await pool.fetch("SELECT event_type FROM audit_events WHERE request_id = $1::uuid", rid)
    assert "status.denied" not in [e["event_type"] for e in events]


async def test_a_label_claiming_a_role_shows_beside_the_role_the_token_holds(http, pool):
    """An agent's token labelled "compliance officer Jane" adds a note and opens a request: the
    timeline and the notes show it "compliance officer Jane (agent)", as the audit event records
    the role. Before, the label alone: the agent's acts read as compliance's."""
    made = await http.post("/v1/tokens", headers=await staff_headers(pool, "admin"),
                           json={"role": "agent", "label": "compliance officer Jane"})
    assert made.status_code == 201, made.text
    jane = {"Authorization": f"Bearer {made.json()['token']}"}
    opened = await http.post("/v1/requests", headers=jane, json={"type": "access", "subject": {
        "email": unique_email("label")}, "identity_attested": True})
    assert opened.status_code == 201, opened.text
    rid = opened.json()["id"]
    noted = await http.post(f"/v1/requests/{rid}/notes", headers=jane, json={"note": "Spoke to the subject."})
    assert noted.status_code == 201, noted.text

    await console_sign_in(http, pool, "compliance")
    page = (await http.get(f"/console/requests/{rid}")).text
    assert page.count("compliance officer Jane (agent)") >= 3, page  # opened, noted; the note itself
    assert "compliance officer Jane<" not in page and "by compliance officer Jane\n" not in page


async def test_a_session_planted_before_sign_in_is_not_the_one_signed_in(http, pool):
    """Session fixation: an agent plants their own session's cookie in a compliance officer's
    browser, who then signs in. The officer's session is a new one (the planted id is ended, not
    promoted), so the agent's cookie never carries the officer's role. Held already."""
    await console_sign_in(http, pool, "agent")
    planted = http.cookies["dsrflow_session"]
    http.cookies.clear()
    form = await http.get("/console/sign-in")
    http.cookies.set("dsrflow_session", planted)
    answer = await http.post("/console/sign-in", data={
        "token": await create_token(pool, "compliance", "planted"), "csrf_token": CSRF_FIELD.search(form.text).group(1)})
    assert answer.status_code == 303, answer.text
    signed_in = answer.cookies["dsrflow_session"]
    assert signed_in != planted
    for session, status in ((signed_in, 200), (planted, 401)):
        http.cookies.clear()
        http.cookies.set("dsrflow_session", session)
        assert (await http.get("/v1/legal-holds")).status_code == status


HOSTILE_NOTE = '<script>alert(1)</script><img src=x onerror=alert(2)> =HYPERLINK("https://evil.example")'


async def test_staff_text_is_text_on_the_console_and_in_the_evidence_pack(http, pool):
    """An agent's note of markup and a formula shows as text on the request page and in the
    evidence pack compliance opens (escaped; the pack is HTML and JSON, no CSV). Held already."""
    rid = (await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "subject": {"email": unique_email("markup")}, "identity_attested": True})).json()["id"]
    csrf = await console_sign_in(http, pool, "agent")
    noted = await http.post(f"/console/requests/{rid}/notes", data={"note": HOSTILE_NOTE, "csrf_token": csrf})
    assert noted.status_code == 303
    compliance = await staff_headers(pool, "compliance")
    for page in ((await http.get(f"/console/requests/{rid}")).text,
                 (await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page
        assert "<script>alert" not in page and "<img src=x" not in page


REORDERED = "Checked with the subject \u202eesaeler ton od"


def _hold(text: str, field: str) -> dict:
    body = {"email": unique_email("held-text"), "reason": "Invoice 2024-118 disputed at the Ghent court",
            "review_date": (date.today() + timedelta(days=90)).isoformat()}
    return {**body, field: text}


@pytest.mark.parametrize(("role", "path", "body", "field"), [
    ("agent", "/v1/requests/{rid}/notes", lambda text: {"note": text}, "note"),
    ("compliance", "/v1/requests/{rid}/resume", lambda text: {"reason": text}, "reason"),
    ("compliance", "/v1/requests/{rid}/deferred-erasures/crm/settle", lambda text: {"note": text}, "note"),
    ("compliance", "/v1/legal-holds", lambda text: _hold(text, "reason"), "reason"),
    ("compliance", "/v1/legal-holds", lambda text: _hold(text, "basis"), "basis"),
    ("compliance", "/v1/legal-holds", lambda text: _hold(text, "customer_id"), "customer_id"),
], ids=["note", "resume-reason", "deferred-settle-note", "hold-reason", "hold-basis", "hold-customer-id"])
@pytest.mark.parametrize("text", [REORDERED, "Checked\x1b[2J with the subject"], ids=["reordering-mark", "escape"])
async def test_staff_text_other_staff_read_is_refused_with_controls_or_reordering_marks(
        http, pool, role, path, body, field, text):
    """A note, a resume reason, a deferred erasure's settling note and a legal hold's reason,
    basis and customer id are read by other staff (the timeline, the evidence pack, the holds
    list): a right-to-left override makes them read otherwise than written, and a control
    character is not text. Refused with 422 naming the field; nothing stored. Before, notes and
    the resume reason took reordering marks, and a hold took any character but NUL (which every
    body refuses)."""
    rid = (await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "subject": {"email": unique_email("staff-text")}, "identity_attested": True})).json()["id"]
    holds = await pool.fetchval("SELECT count(*) FROM legal_holds")
    answer = await http.post(path.format(rid=rid), headers=await staff_headers(pool, role), json=body(text))
    assert answer.status_code == 422 and answer.headers["content-type"].startswith(PROBLEM), answer.text
    assert [e["field"] for e in answer.json()["errors"]] == [field], answer.text
    assert await pool.fetchval("SELECT count(*) FROM request_notes WHERE request_id = $1::uuid", rid) == 0
    assert await pool.fetchval("SELECT count(*) FROM legal_holds") == holds
